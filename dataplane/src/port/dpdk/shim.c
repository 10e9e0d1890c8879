/* statewall's DPDK shim: the static-inline fast-path functions of DPDK as real symbols,
 * and the control path (device configuration, queue setup, stats) behind C functions with
 * plain-integer signatures, so the Rust side never lays out a DPDK struct.
 *
 * Built by dataplane/build.rs only with the `dpdk` feature. Every function returns 0 or a
 * count on success and a negative errno on failure unless documented otherwise. */
#define ALLOW_EXPERIMENTAL_API 1
#include <errno.h>
#include <string.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_ethdev.h>
#include <rte_thash.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* ---- EAL ---------------------------------------------------------------- */

int sw_eal_init(int argc, char **argv) { return rte_eal_init(argc, argv); }
int sw_errno(void) { return rte_errno; }
const char *sw_strerror(int e) { return rte_strerror(e); }
int sw_eal_cleanup(void) { return rte_eal_cleanup(); }

/* Gives the calling (non-EAL) thread an lcore id so mempool per-lcore caches work for it.
 * Cheap when already registered. Returns the lcore id, or -1 when none was free. */
int sw_thread_register(void) {
    if (rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() != 0)
        return -1;
    return (int)rte_lcore_id();
}

/* ---- devices ------------------------------------------------------------ */

unsigned sw_dev_count_avail(void) { return rte_eth_dev_count_avail(); }

int sw_port_by_name(const char *name, uint16_t *port) {
    return rte_eth_dev_get_port_by_name(name, port);
}

/* The device's queue limits. */
int sw_port_max_queues(uint16_t port, uint16_t *rxq, uint16_t *txq) {
    struct rte_eth_dev_info info;
    int r = rte_eth_dev_info_get(port, &info);
    if (r != 0)
        return r;
    *rxq = info.max_rx_queues;
    *txq = info.max_tx_queues;
    return 0;
}

int sw_port_socket(uint16_t port) { return rte_eth_dev_socket_id(port); }

struct rte_mempool *sw_pool_create(const char *name, unsigned n, unsigned cache,
                                   uint16_t data_room, int socket) {
    return rte_pktmbuf_pool_create(name, n, cache, 0, data_room, socket);
}

/* Symmetric Toeplitz key: 0x6d5a repeated makes the hash of (src, dst) equal to the hash
 * of (dst, src), so both directions of a flow reach the same queue. 40 bytes is the
 * common size; some devices take longer keys (52 bytes on i40e), hence the room. */
static uint8_t sw_sym_rss_key[64];

/* Configures `port` with nb_rxq/nb_txq queues (RSS over IP/TCP/UDP with the symmetric key
 * when nb_rxq > 1 and the device hashes), sets up every queue with `pools[q]` as queue q's
 * mempool, enables promiscuous mode and starts the device. `*nb_rxd`/`*nb_txd` are adjusted
 * to the device's limits. */
int sw_port_configure(uint16_t port, uint16_t nb_rxq, uint16_t nb_txq, uint16_t *nb_rxd,
                      uint16_t *nb_txd, int socket, struct rte_mempool **pools) {
    struct rte_eth_dev_info info;
    struct rte_eth_conf conf;
    int r;
    unsigned i;

    r = rte_eth_dev_info_get(port, &info);
    if (r != 0)
        return r;
    if (nb_rxq > info.max_rx_queues || nb_txq > info.max_tx_queues)
        return -EINVAL;
    memset(&conf, 0, sizeof(conf));
    for (i = 0; i < sizeof(sw_sym_rss_key); i += 2) {
        sw_sym_rss_key[i] = 0x6d;
        sw_sym_rss_key[i + 1] = 0x5a;
    }
    if (nb_rxq > 1 && info.flow_type_rss_offloads != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = sw_sym_rss_key;
        conf.rx_adv_conf.rss_conf.rss_key_len =
            info.hash_key_size ? info.hash_key_size : 40;
        if (conf.rx_adv_conf.rss_conf.rss_key_len > sizeof(sw_sym_rss_key))
            conf.rx_adv_conf.rss_conf.rss_key_len = sizeof(sw_sym_rss_key);
        conf.rx_adv_conf.rss_conf.rss_hf =
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    }
    /* Receive checksum verification where the device has it (conntrack then skips its
     * own, as Linux does for CHECKSUM_UNNECESSARY). */
    conf.rxmode.offloads |= info.rx_offload_capa & (RTE_ETH_RX_OFFLOAD_TCP_CKSUM |
                                                    RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
    r = rte_eth_dev_configure(port, nb_rxq, nb_txq, &conf);
    if (r != 0)
        return r;
    r = rte_eth_dev_adjust_nb_rx_tx_desc(port, nb_rxd, nb_txd);
    if (r != 0)
        return r;
    for (i = 0; i < nb_rxq; i++) {
        r = rte_eth_rx_queue_setup(port, i, *nb_rxd, socket, NULL, pools[i]);
        if (r != 0)
            return r;
    }
    for (i = 0; i < nb_txq; i++) {
        r = rte_eth_tx_queue_setup(port, i, *nb_txd, socket, NULL);
        if (r != 0)
            return r;
    }
    r = rte_eth_dev_start(port);
    if (r != 0)
        return r;
    /* Not every vdev supports promiscuous mode (memif, null): not an error. */
    (void)rte_eth_promiscuous_enable(port);
    return 0;
}

/* 1 when the link is up, 0 when down, negative errno on error. */
/* After sw_port_configure: when the device does RSS, sets its redirection table to
 * entry i = queue i % nb_rxq and reports the hashed types (rss_hf) and the table's size,
 * which is what statewall's software model of the device's steering needs. Returns 0
 * with *reta_size = 0 when the device does no RSS (or cannot report or set it). */
int sw_port_rss(uint16_t port, uint16_t nb_rxq, uint64_t *rss_hf, uint16_t *reta_size) {
    struct rte_eth_dev_info info;
    struct rte_eth_rss_conf rss;
    struct rte_eth_rss_reta_entry64 reta[RTE_ETH_RSS_RETA_SIZE_512 / RTE_ETH_RETA_GROUP_SIZE];
    uint8_t key[64];
    unsigned i;
    int r;

    *rss_hf = 0;
    *reta_size = 0;
    r = rte_eth_dev_info_get(port, &info);
    if (r != 0)
        return r;
    if (nb_rxq < 2 || info.flow_type_rss_offloads == 0 || info.reta_size == 0 ||
        info.reta_size > RTE_ETH_RSS_RETA_SIZE_512 ||
        (info.reta_size & (info.reta_size - 1)) != 0)
        return 0;
    memset(&rss, 0, sizeof(rss));
    rss.rss_key = key;
    rss.rss_key_len = sizeof(key);
    if (rte_eth_dev_rss_hash_conf_get(port, &rss) != 0)
        return 0;
    /* The key the device reports must be ours (a driver may keep its own). */
    for (i = 0; i < rss.rss_key_len && i < sizeof(key); i++)
        if (key[i] != sw_sym_rss_key[i])
            return 0;
    memset(reta, 0, sizeof(reta));
    for (i = 0; i < info.reta_size; i++) {
        reta[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
        reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] = i % nb_rxq;
    }
    if (rte_eth_dev_rss_reta_update(port, reta, info.reta_size) != 0)
        return 0;
    *rss_hf = rss.rss_hf;
    *reta_size = info.reta_size;
    return 0;
}

/* DPDK's own software Toeplitz hash (rte_thash.h), for cross-checking statewall's. */
uint32_t sw_softrss(uint32_t *tuple, uint32_t words, const uint8_t *key) {
    return rte_softrss(tuple, words, key);
}

int sw_port_link_up(uint16_t port) {
    struct rte_eth_link link;
    int r = rte_eth_link_get_nowait(port, &link);
    if (r != 0)
        return r;
    return link.link_status == RTE_ETH_LINK_UP;
}

int sw_port_stop(uint16_t port) { return rte_eth_dev_stop(port); }
int sw_port_close(uint16_t port) { return rte_eth_dev_close(port); }

/* out = ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf. */
int sw_port_stats(uint16_t port, uint64_t out[8]) {
    struct rte_eth_stats s;
    int r = rte_eth_stats_get(port, &s);
    if (r != 0)
        return r;
    out[0] = s.ipackets;
    out[1] = s.opackets;
    out[2] = s.ibytes;
    out[3] = s.obytes;
    out[4] = s.imissed;
    out[5] = s.ierrors;
    out[6] = s.oerrors;
    out[7] = s.rx_nombuf;
    return 0;
}

/* ---- fast path ---------------------------------------------------------- */

/* Receives up to n mbufs and reports each one's data pointer, data length and room
 * (bytes from the data pointer to the end of the buffer), so Rust needs no call per packet. */
/* `csum_ok[i]`: 1 when the device verified the L4 checksum of frame i. */
uint16_t sw_rx_burst(uint16_t port, uint16_t q, struct rte_mbuf **pkts, uint8_t **data,
                     uint32_t *len, uint32_t *room, uint8_t *csum_ok, uint16_t n) {
    uint16_t got = rte_eth_rx_burst(port, q, pkts, n);
    uint16_t i;
    for (i = 0; i < got; i++) {
        struct rte_mbuf *m = pkts[i];
        data[i] = rte_pktmbuf_mtod(m, uint8_t *);
        /* Multi-segment frames are not supported: only the first segment is seen. */
        len[i] = rte_pktmbuf_data_len(m);
        room[i] = (uint32_t)m->buf_len - m->data_off;
        csum_ok[i] = (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    }
    return got;
}

uint16_t sw_tx_burst(uint16_t port, uint16_t q, struct rte_mbuf **pkts, uint16_t n) {
    return rte_eth_tx_burst(port, q, pkts, n);
}

/* Allocates an mbuf and appends `len` bytes copied from `src`; NULL when the pool is empty
 * or the frame does not fit. */
struct rte_mbuf *sw_mbuf_from(struct rte_mempool *pool, const uint8_t *src, uint32_t len) {
    struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
    char *dst;
    if (m == NULL)
        return NULL;
    dst = rte_pktmbuf_append(m, (uint16_t)len);
    if (dst == NULL || len > UINT16_MAX) {
        rte_pktmbuf_free(m);
        return NULL;
    }
    memcpy(dst, src, len);
    return m;
}

/* Sets a single-segment mbuf's frame length (data_len and pkt_len). */
void sw_mbuf_set_len(struct rte_mbuf *m, uint32_t len) {
    m->data_len = (uint16_t)len;
    m->pkt_len = len;
}

void sw_mbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void sw_mbuf_free_bulk(struct rte_mbuf **m, unsigned n) { rte_pktmbuf_free_bulk(m, n); }
