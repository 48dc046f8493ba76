//! Helpers shared by the fuzz targets (not a target itself: no `[[bin]]` names it).

/// Offsets in an untagged Ethernet frame carrying IPv6.
const ETHERTYPE: core::ops::Range<usize> = 12..14;
const PAYLOAD_LENGTH: core::ops::Range<usize> = 18..20;
const SOURCE: core::ops::Range<usize> = 22..38;
const DESTINATION: core::ops::Range<usize> = 38..54;
const MESSAGE: usize = 54;

/// The ICMPv6 message of an untagged IPv6 frame, as its payload length delimits it, if the
/// frame holds all of it.
fn message_range(frame: &[u8]) -> Option<core::ops::Range<usize>> {
    if frame.get(ETHERTYPE)? != [0x86, 0xdd] {
        return None;
    }
    let length = u16::from_be_bytes(frame.get(PAYLOAD_LENGTH)?.try_into().ok()?);
    let end = MESSAGE + usize::from(length);
    (end <= frame.len()).then_some(MESSAGE..end)
}

/// RFC 1071 one's-complement sum of the ICMPv6 pseudo-header (RFC 4443 2.3) and `message`,
/// written independently of the crate under test (which uses etherparse).
fn ones_complement_sum(frame: &[u8], message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u64::from(pair[0]) << 8 | u64::from(pair.get(1).copied().unwrap_or(0));
        }
    };
    add(&frame[SOURCE]);
    add(&frame[DESTINATION]);
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Overwrite the ICMPv6 checksum of an untagged IPv6 frame (whatever its Next Header says)
/// with the correct one, so that mutated frames get past the checksum check and exercise what
/// lies behind it. Frames too short to hold a checksum are left alone.
pub fn fix_checksum(frame: &mut [u8]) {
    let Some(range) = message_range(frame) else {
        return;
    };
    if range.len() < 4 {
        return;
    }
    frame[range.start + 2..range.start + 4].fill(0);
    let sum = ones_complement_sum(frame, &frame[range.clone()]);
    frame[range.start + 2..range.start + 4].copy_from_slice(&(!sum).to_be_bytes());
}

/// True when the ICMPv6 checksum of an untagged IPv6 frame verifies (RFC 1071: the sum over
/// everything, checksum included, is all ones).
pub fn checksum_is_valid(frame: &[u8]) -> bool {
    message_range(frame).is_some_and(|range| ones_complement_sum(frame, &frame[range]) == 0xffff)
}
