//! pktgen (being written).
