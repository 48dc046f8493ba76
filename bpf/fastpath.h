// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The layout the XDP program (bpf/fastpath.bpf.c) and its loader (src/link/fastpath/) share:
// map sizes, the config record, the verdict encoding and the counter indices.
// Owns: these numbers. Must-not: anything else. src/link/fastpath/abi.rs repeats them for
// Rust; tests/fastpath.rs checks both agree by running the program.
#ifndef NDP_FASTPATH_H
#define NDP_FASTPATH_H

#define FP_MAX_PREFIXES 4096
#define FP_MAX_TARGETS 65536
#define FP_MAX_GATEWAYS 64
#define FP_MAX_SOURCES 4096
#define FP_MAX_ANSWERED 8192

/* Verdict: bits 0-1 action, bit 2 live target, bits 8-15 drop counter index. */
#define FP_ACTION_MASK 3
#define FP_ACTION_PASS 0
#define FP_ACTION_ANSWER 1
#define FP_ACTION_DROP 2
#define FP_LIVE 4
#define FP_REASON_SHIFT 8

#define FP_CONF_ROUTER 1
#define FP_CONF_OVERRIDE 2
#define FP_CONF_FIXED_SOURCE 4

struct fp_config {
	__u8 mac[6];
	__u8 enabled;
	__u8 flags;
	__u8 src[16];
	__u32 per_source;
	__u32 total;
};

enum fp_counter {
	FP_SEEN = 0,
	FP_ANSWERED,
	FP_PASSED,
	FP_TRUNCATED,
	FP_TOO_SHORT,
	FP_BAD_CHECKSUM,
	FP_ZERO_LENGTH_OPTION,
	FP_BAD_OPTION_LENGTH,
	FP_HOP_LIMIT,
	FP_ICMP_CODE,
	FP_MULTICAST_TARGET,
	FP_MULTICAST_SOURCE,
	FP_SOURCE_MAC,
	FP_IMPOSSIBLE_SOURCE,
	FP_SOURCE_LLADDR,
	FP_DAD_NOT_TO_SOLICITED_NODE,
	FP_DAD_WITH_SOURCE_LLADDR,
	FP_FROM_OURSELVES,
	FP_UNKNOWN_DOWNSTREAM,
	FP_NOT_CONNECTED,
	FP_NO_ROUTE,
	FP_ROUTED_TO_UPLINK,
	FP_NO_DOWNSTREAM,
	FP_RATE_PER_SOURCE,
	FP_RATE_TOTAL,
	FP_RATE_GATEWAY_LIVE,
	FP_RATE_GATEWAY_OTHER,
	FP_NOT_COVERED,
	FP_NR_COUNTERS
};

#endif
