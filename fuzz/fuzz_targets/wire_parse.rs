//! Arbitrary bytes into the codec: `NeighborSolicit::parse`, `NeighborAdvert::parse`,
//! `RouterSolicit::parse` and `RouterAdvert::parse` must never panic, and whatever parses must survive a round trip: emitted again, it re-parses to an
//! equal value (parse and emit are symmetric), with a valid checksum, in a frame no longer than
//! the input.
//!
//! The parsers are also compared with an independent reference parser (fuzz_targets/common.rs)
//! written from their documentation: same error for every frame, same fields for every message.
//!
//! Each input is tried as it is and, so that mutations get past the checksum to the option
//! walk, once more with its ICMPv6 checksum corrected.
//!
//! Run (from the repository root, stable toolchain):
//! `cargo fuzz run -s none wire_parse fuzz/corpus/wire_parse fuzz/seeds/wire_parse`

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use ndp_responder::ndp::router::{RouterAdvert, RouterSolicit};
use ndp_responder::ndp::{self, NeighborAdvert, NeighborSolicit, ParseError};

fuzz_target!(|frame: &[u8]| {
    check(frame);
    let mut fixed = frame.to_vec();
    common::fix_checksum(&mut fixed);
    if fixed != frame {
        check(&fixed);
    }
});

fn check(frame: &[u8]) {
    let ns = NeighborSolicit::parse(frame);
    let na = NeighborAdvert::parse(frame);
    // Differential: an independent reading of the same frame, from the documented checks and
    // plain offsets, agrees on every error and every field.
    assert_eq!(ns, common::reference_ns(frame), "NS parse vs reference");
    assert_eq!(na, common::reference_na(frame), "NA parse vs reference");
    if let Ok(ns) = ns {
        let mut buf = [0u8; ndp::MAX_EMIT_LEN];
        let len = ns.emit(&mut buf).expect("an NS always fits MAX_EMIT_LEN");
        let emitted = &buf[..len];
        assert_eq!(
            NeighborSolicit::parse(emitted),
            Ok(ns),
            "NS re-parse differs; emitted {emitted:02x?}"
        );
        assert!(common::checksum_is_valid(emitted), "{emitted:02x?}");
        // Emit writes only what parse reported; every option parse read took 8 octets or more.
        assert!(
            len <= frame.len(),
            "emit grew the frame: {len} > {}",
            frame.len()
        );
        // One frame is one message: an NS never also parses as an NA.
        assert_eq!(na, Err(ParseError::WrongIcmpType));
    }
    if let Ok(na) = na {
        let mut buf = [0u8; ndp::MAX_EMIT_LEN];
        let len = na.emit(&mut buf).expect("an NA always fits MAX_EMIT_LEN");
        let emitted = &buf[..len];
        assert_eq!(
            NeighborAdvert::parse(emitted),
            Ok(na),
            "NA re-parse differs; emitted {emitted:02x?}"
        );
        assert!(common::checksum_is_valid(emitted), "{emitted:02x?}");
        assert!(
            len <= frame.len(),
            "emit grew the frame: {len} > {}",
            frame.len()
        );
        assert_eq!(ns, Err(ParseError::WrongIcmpType));
    }
    router(frame, ns);
    // Both parsers apply the same structural checks up to the ICMPv6 type, so when neither
    // reached its type check they fail for the same reason.
    if let (Err(a), Err(b)) = (ns, na) {
        if a != ParseError::WrongIcmpType && b != ParseError::WrongIcmpType {
            assert_eq!(
                a, b,
                "NS and NA parsers disagree on a frame that is neither"
            );
        }
    }
}

/// The RS/RA codec (SLAAC): no panic, and a parsed message emitted again re-parses equal,
/// with a valid checksum; its layers below ICMPv6 fail as the NS parser's do.
fn router(frame: &[u8], ns: Result<NeighborSolicit, ParseError>) {
    let rs = RouterSolicit::parse(frame);
    let ra = RouterAdvert::parse(frame);
    if let Ok(rs) = rs {
        let mut buf = [0u8; 128];
        let len = rs.emit(&mut buf).expect("an RS always fits 128 octets");
        assert_eq!(RouterSolicit::parse(&buf[..len]), Ok(rs), "RS re-parse differs");
        assert!(common::checksum_is_valid(&buf[..len]));
    }
    if let Ok(ra) = &ra {
        // An RA larger than the IPv6 minimum MTU is not emitted (BufferTooSmall).
        if let Ok(emitted) = ra.to_frame() {
            assert_eq!(
                RouterAdvert::parse(&emitted).as_ref(),
                Ok(ra),
                "RA re-parse differs; emitted {emitted:02x?}"
            );
            assert!(common::checksum_is_valid(&emitted), "{emitted:02x?}");
        }
    }
    for other in [rs.err(), ra.err()].into_iter().flatten() {
        if let Err(e) = ns {
            if other != ParseError::WrongIcmpType
                && other != ParseError::TooShort
                && e != ParseError::WrongIcmpType
                && e != ParseError::TooShort
            {
                assert_eq!(other, e, "RS/RA and NS parsers disagree below ICMPv6");
            }
        }
    }
}
