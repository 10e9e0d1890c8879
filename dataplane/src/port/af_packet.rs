//! af_packet (being written).
