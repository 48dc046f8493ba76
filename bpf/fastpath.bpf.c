// SPDX-License-Identifier: MIT OR Apache-2.0
//
// ndp-responder's in-kernel fast path: one program with two entry points, XDP (native, on
// uplinks with a hardware or virtio driver) and TC ingress (virtual uplinks), that answers the
// Neighbor Solicitations the daemon would answer, in the kernel, before any process runs.
//
// Owns: the per-frame mirror of the socket path: its kernel filter (src/link/bpf.rs: the
// target's prefix, read before parsing), NeighborSolicit::parse (src/ndp), validate and
// decide (src/decide/policy.rs, RFC 4861 7.1.1), the rate limits (src/decide/ratelimit.rs)
// and the NA of policy::advert (RFC 4861 7.2.4), reading only the maps the daemon fills
// (src/link/fastpath/, computed by src/decide/fastmap.rs); the per-CPU counters by reason;
// the last-answered time per target.
// Must-not: decide anything the maps do not say. Whatever it is unsure of (not an NS, VLAN
// tags, extension headers, messages over 512 octets, more than 16 options, targets no map
// knows, probe-mode targets, the uplink's own and the gateways' addresses) is passed up
// untouched to the kernel and the socket path, which stay the reference. It drops only what
// the socket path drops (malformed or invalid, ignored for a reason the maps carry, or over
// a rate limit), and counts each drop under the socket path's reason.
//
// Rebuilt bit for bit by bpf/build (Debian clang 14, libbpf-dev); the object is checked in as
// src/link/fastpath/fastpath.bpf.o.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "fastpath.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct in6 {
	__u8 a[16];
};

struct mac_key {
	__u8 a[8];
};

struct gw_state {
	__u64 tat[2]; /* [0] other targets, [1] live targets */
};

/* Two sets of answer maps; `active` says which one the program reads (a reload fills the
 * other and flips the index: never a half-updated set). */
#define ANSWER_LPM(name)                                                                   \
	struct {                                                                           \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                                       \
		__type(key, struct lpm_key);                                               \
		__type(value, __u32);                                                      \
		__uint(max_entries, FP_MAX_PREFIXES);                                      \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                      \
	} name SEC(".maps")
#define ANSWER_HASH(name)                                                                  \
	struct {                                                                           \
		__uint(type, BPF_MAP_TYPE_HASH);                                           \
		__type(key, struct in6);                                                   \
		__type(value, __u32);                                                      \
		__uint(max_entries, FP_MAX_TARGETS);                                       \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                      \
	} name SEC(".maps")

ANSWER_LPM(prefixes0);
ANSWER_LPM(prefixes1);
ANSWER_HASH(targets0);
ANSWER_HASH(targets1);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_config);
	__uint(max_entries, 2);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct mac_key);
	__type(value, struct gw_state);
	__uint(max_entries, FP_MAX_GATEWAYS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} gateways SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct in6);
	__type(value, __u64);
	__uint(max_entries, FP_MAX_SOURCES);
} sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct in6);
	__type(value, __u64);
	__uint(max_entries, FP_MAX_ANSWERED);
} answered SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, FP_NR_COUNTERS);
} counters SEC(".maps");

static __always_inline void count(__u32 index)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &index);
	if (c)
		*c += 1;
}

/* What the shared part decides; the entry points turn it into their return codes. */
enum nd_action { ND_PASS, ND_DROP, ND_ANSWER };

static __always_inline int nd_drop(__u32 index)
{
	count(index);
	return ND_DROP;
}

/* The answer to build, as the shared part worked it out. */
struct answer {
	__u8 dst_mac[6];
	__u8 our_mac[6];
	__u8 src_ip[16];
	__u8 dst_ip[16];
	__u8 target[16];
	__u8 flags;
	__u64 now;
};

#define ETH_LEN 14
#define IP6_LEN 40
#define ICMP_OFF (ETH_LEN + IP6_LEN)
#define ND_LEN 24
#define OPT_OFF (ICMP_OFF + ND_LEN)
#define NA_LEN (OPT_OFF + 8)
/* Longest ICMPv6 message checked here; longer ones go up to the socket path. */
#define MAX_MSG 512
#define MAX_OPTIONS 16

static __always_inline __u32 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u32)sum;
}

/* Sum of 16-bit big-endian words of an address, as host numbers. */
static __always_inline __u64 sum_addr(const __u8 *a)
{
	__u64 s = 0;
#pragma unroll
	for (int i = 0; i < 16; i += 2)
		s += ((__u32)a[i] << 8) | a[i + 1];
	return s;
}

static __always_inline int is_zero6(const __u8 *a)
{
	__u8 acc = 0;
#pragma unroll
	for (int i = 0; i < 16; i++)
		acc |= a[i];
	return acc == 0;
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] &&
	       a[5] == b[5];
}

static __always_inline int mac_bad(const __u8 *m)
{
	/* multicast (and broadcast) or all zero */
	return (m[0] & 1) || (m[0] | m[1] | m[2] | m[3] | m[4] | m[5]) == 0;
}

/* GCRA: the token bucket of src/decide/ratelimit.rs (rate per second, a burst of one
 * second's worth) in integer nanoseconds. True when the answer may go. */
static __always_inline int bucket_take(__u64 *tat, __u32 rate, __u64 now, int commit)
{
	if (rate == 0)
		return 1;
	__u64 interval = 1000000000ULL / rate;
	__u64 burst = 1000000000ULL;
	__u64 t = *tat;
	if (t < now)
		t = now;
	if (t + interval - now > burst)
		return 0;
	if (commit)
		*tat = t + interval;
	return 1;
}

/* The solicitation in [data, data_end) of `frame_len` octets (the whole frame), whose
 * Ethernet, IPv6 and ICMPv6 type the caller checked (the first OPT_OFF octets are there):
 * validated as the socket path does, looked up, rate limited; the answer's fields in `a`. */
static __always_inline int ndp_decide(void *data, void *data_end, __u32 frame_len,
				      struct answer *a)
{
	__u8 *p = data;
	if (data + OPT_OFF > data_end)
		return ND_PASS;

	__u32 zero = 0;
	__u32 *act = bpf_map_lookup_elem(&active, &zero);
	if (!act)
		return ND_PASS;
	__u32 set = *act & 1;
	struct fp_config *cfg = bpf_map_lookup_elem(&config, &set);
	if (!cfg || !cfg->enabled)
		return ND_PASS;

	/* The answer set first, as the socket path's kernel filter (src/link/bpf.rs) reads the
	 * target's octets before anything is parsed: a target no rule covers is not ours to
	 * count or drop, whatever else is wrong with the frame. Exact targets, then prefixes. */
	__u8 *target = p + ICMP_OFF + 8;
	__u32 verdict;
	{
		struct in6 key;
		__builtin_memcpy(key.a, target, 16);
		__u32 *found =
			bpf_map_lookup_elem(set ? (void *)&targets1 : (void *)&targets0, &key);
		if (!found) {
			struct lpm_key lk = { .prefixlen = 128 };
			__builtin_memcpy(lk.addr, target, 16);
			found = bpf_map_lookup_elem(set ? (void *)&prefixes1 : (void *)&prefixes0,
						    &lk);
		}
		if (!found)
			return ND_PASS;
		verdict = *found;
	}
	__u32 plen = ((__u32)p[18] << 8) | p[19];
	/* The IPv6 payload is the message; bytes after it are link padding (RFC 2464). */
	if (ICMP_OFF + plen > frame_len)
		return nd_drop(FP_TRUNCATED);
	if (plen < ND_LEN)
		return nd_drop(FP_TOO_SHORT);
	if (plen > MAX_MSG)
		return ND_PASS;

	/* RFC 4443 2.3 / RFC 4861 7.1.1: the ICMPv6 checksum over the pseudo-header. */
	__u64 sum = sum_addr(p + 22) + sum_addr(p + 38) + plen + 58;
	for (__u32 i = 0; i < MAX_MSG / 2; i++) {
		__u32 off = ICMP_OFF + 2 * i;
		if (2 * i >= plen)
			break;
		__u8 *w = data + off;
		if ((void *)(w + 1) > data_end)
			break;
		if (2 * i + 1 == plen || (void *)(w + 2) > data_end) {
			sum += (__u32)w[0] << 8;
			break;
		}
		sum += ((__u32)w[0] << 8) | w[1];
	}
	if (fold(sum) != 0xffff)
		return nd_drop(FP_BAD_CHECKSUM);

	/* RFC 4861 4.6, 7.1.1: every option has a non-zero length and ends inside the message. */
	__u8 slla[6] = {};
	int has_slla = 0;
	__u32 msg_end = ICMP_OFF + plen;
	__u32 off = OPT_OFF;
	int i;
	for (i = 0; i < MAX_OPTIONS; i++) {
		if (off >= msg_end)
			break;
		if (off + 1 >= msg_end)
			return nd_drop(FP_BAD_OPTION_LENGTH);
		__u8 *o = data + (off & 0x3ff);
		if ((void *)(o + 8) > data_end) {
			/* The option's length octet is inside the message (checked above); an
			 * option shorter than the frame end is fine, but read it byte-wise. */
			if ((void *)(o + 2) > data_end)
				return ND_PASS;
			if (o[1] == 0)
				return nd_drop(FP_ZERO_LENGTH_OPTION);
			return nd_drop(FP_BAD_OPTION_LENGTH);
		}
		__u32 units = o[1];
		if (units == 0)
			return nd_drop(FP_ZERO_LENGTH_OPTION);
		if (off + units * 8 > msg_end)
			return nd_drop(FP_BAD_OPTION_LENGTH);
		if (o[0] == 1 && !has_slla) {
			has_slla = 1;
			__builtin_memcpy(slla, o + 2, 6);
		}
		off += units * 8;
	}
	if (i == MAX_OPTIONS && off < msg_end)
		return ND_PASS;

	__u8 *eth_dst = p, *eth_src = p + 6, *ip_src = p + 22, *ip_dst = p + 38;

	/* RFC 4861 7.1.1 and the other checks of policy::validate, in its order. */
	if (p[21] != 255)
		return nd_drop(FP_HOP_LIMIT);
	if (p[ICMP_OFF + 1] != 0)
		return nd_drop(FP_ICMP_CODE);
	if (target[0] == 0xff)
		return nd_drop(FP_MULTICAST_TARGET);
	if (ip_src[0] == 0xff)
		return nd_drop(FP_MULTICAST_SOURCE);
	if (mac_bad(eth_src))
		return nd_drop(FP_SOURCE_MAC);
	int src_unspec = is_zero6(ip_src);
	{
		/* ::1 (loopback) or ::ffff:0:0/96 (IPv4-mapped) */
		__u8 acc = 0;
#pragma unroll
		for (int k = 0; k < 10; k++)
			acc |= ip_src[k];
		if (acc == 0) {
			if (ip_src[10] == 0xff && ip_src[11] == 0xff)
				return nd_drop(FP_IMPOSSIBLE_SOURCE);
			if ((ip_src[10] | ip_src[11] | ip_src[12] | ip_src[13] | ip_src[14]) == 0 &&
			    ip_src[15] == 1)
				return nd_drop(FP_IMPOSSIBLE_SOURCE);
		}
	}
	if (has_slla && mac_bad(slla))
		return nd_drop(FP_SOURCE_LLADDR);
	if (src_unspec) {
		/* RFC 4861 7.1.1: DAD goes to a solicited-node group, ff02::1:ffXX:XXXX */
		__u8 acc = 0;
#pragma unroll
		for (int k = 2; k < 11; k++)
			acc |= ip_dst[k];
		if (ip_dst[0] != 0xff || ip_dst[1] != 0x02 || acc != 0 || ip_dst[11] != 1 ||
		    ip_dst[12] != 0xff)
			return nd_drop(FP_DAD_NOT_TO_SOLICITED_NODE);
		if (has_slla)
			return nd_drop(FP_DAD_WITH_SOURCE_LLADDR);
	}

	/* policy::decide, before the target is looked at. */
	if (mac_eq(eth_src, cfg->mac))
		return nd_drop(FP_FROM_OURSELVES);
	if (!(eth_dst[0] & 1) && !mac_eq(eth_dst, cfg->mac))
		return ND_PASS;
	int dst_multicast = ip_dst[0] == 0xff;
	if (!dst_multicast) {
		__u8 diff = 0;
#pragma unroll
		for (int k = 0; k < 16; k++)
			diff |= ip_dst[k] ^ target[k];
		if (diff)
			return ND_PASS;
	}

	__u32 v = verdict;
	switch (v & FP_ACTION_MASK) {
	case FP_ACTION_ANSWER:
		break;
	case FP_ACTION_DROP:
		return nd_drop((v >> FP_REASON_SHIFT) & 0xff);
	default:
		return ND_PASS;
	}
	int live = (v & FP_LIVE) != 0;

	/* Rate limits (src/decide/ratelimit.rs): a gateway's own buckets, by its MAC. */
	__u64 now = bpf_ktime_get_ns();
	struct mac_key mk = {};
	__builtin_memcpy(mk.a, eth_src, 6);
	struct gw_state *gw = bpf_map_lookup_elem(&gateways, &mk);
	if (gw) {
		if (!bucket_take(&gw->tat[live], cfg->per_source, now, 1))
			return nd_drop(live ? FP_RATE_GATEWAY_LIVE : FP_RATE_GATEWAY_OTHER);
	} else {
		__u64 *src_tat = 0;
		struct in6 sk;
		__builtin_memcpy(sk.a, ip_src, 16);
		if (cfg->per_source) {
			src_tat = bpf_map_lookup_elem(&sources, &sk);
			if (!src_tat) {
				__u64 fresh = 0;
				bpf_map_update_elem(&sources, &sk, &fresh, BPF_ANY);
				src_tat = bpf_map_lookup_elem(&sources, &sk);
			}
			if (src_tat && !bucket_take(src_tat, cfg->per_source, now, 0))
				return nd_drop(FP_RATE_PER_SOURCE);
		}
		__u64 *tot = bpf_map_lookup_elem(&total, &zero);
		if (tot && !bucket_take(tot, cfg->total, now, 1))
			return nd_drop(FP_RATE_TOTAL);
		if (src_tat)
			bucket_take(src_tat, cfg->per_source, now, 1);
	}

	/* policy::advert (RFC 4861 7.2.4): DAD is answered to all nodes with S=0; the rest to
	 * the solicitor with S=1, at its SLLA or the frame's source; O on multicast
	 * solicitations unless turned off, never on unicast NUD. */
	__u8 *dst_mac = a->dst_mac, *dst_ip = a->dst_ip, *tgt = a->target, *src_ip = a->src_ip;
	__builtin_memcpy(tgt, target, 16);
	if (src_unspec) {
		__u8 all_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };
		__u8 all_ip[16] = { 0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
		__builtin_memcpy(dst_mac, all_mac, 6);
		__builtin_memcpy(dst_ip, all_ip, 16);
	} else {
		__builtin_memcpy(dst_mac, has_slla ? slla : eth_src, 6);
		__builtin_memcpy(dst_ip, ip_src, 16);
	}
	if (cfg->flags & FP_CONF_FIXED_SOURCE)
		__builtin_memcpy(src_ip, cfg->src, 16);
	else
		__builtin_memcpy(src_ip, tgt, 16);
	__u8 flags = 0;
	if (cfg->flags & FP_CONF_ROUTER)
		flags |= 0x80;
	if (!src_unspec)
		flags |= 0x40;
	if ((cfg->flags & FP_CONF_OVERRIDE) && (src_unspec || dst_multicast))
		flags |= 0x20;
	__builtin_memcpy(a->our_mac, cfg->mac, 6);
	a->flags = flags;
	a->now = now;
	return ND_ANSWER;

}

/* Write the NA of `a` over the frame, which is NA_LEN octets now. */
static __always_inline int write_na(void *data, void *data_end, struct answer *a)
{
	if (data + NA_LEN > data_end)
		return -1;
	__u8 *p = data;
	__builtin_memcpy(p, a->dst_mac, 6);
	__builtin_memcpy(p + 6, a->our_mac, 6);
	/* IPv6: version 6, traffic class and flow label 0, 32 octets of ICMPv6, hop limit 255 */
	p[14] = 0x60;
	p[15] = 0;
	p[16] = 0;
	p[17] = 0;
	p[18] = 0;
	p[19] = 32;
	p[20] = 58;
	p[21] = 255;
	__builtin_memcpy(p + 22, a->src_ip, 16);
	__builtin_memcpy(p + 38, a->dst_ip, 16);
	__u8 *m = p + ICMP_OFF;
	m[0] = 136;
	m[1] = 0;
	m[2] = 0;
	m[3] = 0;
	m[4] = a->flags;
	m[5] = 0;
	m[6] = 0;
	m[7] = 0;
	__builtin_memcpy(m + 8, a->target, 16);
	m[24] = 2; /* target link-layer address option, 1 unit (RFC 4861 4.6.1) */
	m[25] = 1;
	__builtin_memcpy(m + 26, a->our_mac, 6);
	__u8 *mac = a->our_mac;
	__u64 s = sum_addr(a->src_ip) + sum_addr(a->dst_ip) + 32 + 58 + ((__u32)136 << 8) +
		  ((__u32)a->flags << 8) + sum_addr(a->target) + (2 << 8) + 1 +
		  (((__u32)mac[0] << 8) | mac[1]) + (((__u32)mac[2] << 8) | mac[3]) +
		  (((__u32)mac[4] << 8) | mac[5]);
	__u16 csum = ~fold(s) & 0xffff;
	m[2] = csum >> 8;
	m[3] = csum & 0xff;
	/* The target is in use (the daemon's status and announcer read this): written at most
	 * once a second per target, an update takes the LRU's lock, a lookup does not. */
	__u64 *last = bpf_map_lookup_elem(&answered, a->target);
	if (!last)
		bpf_map_update_elem(&answered, a->target, &a->now, BPF_ANY);
	else if (a->now - *last > 1000000000ULL)
		*last = a->now;
	count(FP_ANSWERED);
	return 0;
}

/* Is this Ethernet + IPv6 + ICMPv6 Neighbor Solicitation (with room for its target)? */
static __always_inline int is_ns(void *data, void *data_end)
{
	__u8 *p = data;
	if (data + OPT_OFF > data_end)
		return 0;
	return p[12] == 0x86 && p[13] == 0xdd && (p[14] >> 4) == 6 && p[20] == 58 &&
	       p[ICMP_OFF] == 135;
}

/* XDP, native (in the driver): the uplinks with a hardware or virtio driver. */
SEC("xdp")
int ndp_fastpath(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	/* Frames too short for an NS with its target go on: the socket path calls them
	 * truncated if they are NS at all. */
	if (!is_ns(data, data_end))
		return XDP_PASS;
	count(FP_SEEN);
	struct answer a = {};
	/* (Not data_end - data: pointer subtraction needs more than the verifier gives.) */
	__u32 frame_len = (__u32)bpf_xdp_get_buff_len(ctx);
	switch (ndp_decide(data, data_end, frame_len, &a)) {
	case ND_DROP:
		return XDP_DROP;
	case ND_ANSWER:
		break;
	default:
		count(FP_PASSED);
		return XDP_PASS;
	}
	int delta = NA_LEN - (int)frame_len;
	if (delta != 0 && bpf_xdp_adjust_tail(ctx, delta)) {
		count(FP_PASSED);
		return XDP_PASS;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (write_na(data, data_end, &a)) {
		count(FP_PASSED);
		return XDP_PASS;
	}
	return XDP_TX;
}

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define TC_ACT_REDIRECT 7
#define PACKET_OTHERHOST 3

/* TC ingress: virtual uplinks (veth, bridge, bond, VLAN), where native XDP is missing or,
 * like generic XDP, would see frames whose VLAN tag was taken out into the socket buffer
 * (a tagged solicitation must not be answered on the untagged link). Here the tag and the
 * kernel's "for another host" mark are visible: such frames go on. */
SEC("classifier")
int ndp_fastpath_tc(struct __sk_buff *skb)
{
	if (skb->vlan_present || skb->pkt_type == PACKET_OTHERHOST || skb->len > 4096)
		return TC_ACT_OK;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	if (data + OPT_OFF > data_end) {
		/* The headers may be outside the linear part: pull them in. */
		if (skb->len < OPT_OFF || bpf_skb_pull_data(skb, OPT_OFF))
			return TC_ACT_OK;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	if (!is_ns(data, data_end))
		return TC_ACT_OK;
	count(FP_SEEN);
	__u32 frame_len = skb->len;
	if (bpf_skb_pull_data(skb, frame_len)) {
		count(FP_PASSED);
		return TC_ACT_OK;
	}
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	struct answer a = {};
	switch (ndp_decide(data, data_end, frame_len, &a)) {
	case ND_DROP:
		return TC_ACT_SHOT;
	case ND_ANSWER:
		break;
	default:
		count(FP_PASSED);
		return TC_ACT_OK;
	}
	if (frame_len != NA_LEN && bpf_skb_change_tail(skb, NA_LEN, 0)) {
		count(FP_PASSED);
		return TC_ACT_OK;
	}
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (write_na(data, data_end, &a)) {
		count(FP_PASSED);
		return TC_ACT_OK;
	}
	/* Out of the interface it came in by. */
	return bpf_redirect(skb->ifindex, 0);
}
