//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndp_responder::lab::Topology;

pub const EXE: &str = env!("CARGO_BIN_EXE_ndp-responder");

pub fn exe() -> &'static Path {
    Path::new(EXE)
}

/// A topology with a name unique to this test run (tests run in parallel).
pub fn topology(containers: usize) -> Topology {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let tag = format!(
        "ndpt{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Topology::build(&tag, containers).unwrap_or_else(|e| panic!("building the test topology: {e}"))
}

/// Send raw Ethernet frames out of `ifname` inside namespace `ns` (from a thread that joins
/// the namespace, so the test process itself stays where it is). Returns how many were sent.
pub fn send_frames_in(ns: &str, ifname: &str, frames: &[Vec<u8>]) -> usize {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    let ifname = std::ffi::CString::new(ifname).unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let netns = std::fs::File::open(&path).unwrap();
                // SAFETY: setns on a namespace file descriptor; affects this thread only.
                assert_eq!(
                    unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
                    0
                );
                // SAFETY: plain socket calls with valid arguments.
                let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
                assert!(
                    fd >= 0,
                    "packet socket: {}",
                    std::io::Error::last_os_error()
                );
                let index = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
                assert_ne!(index, 0);
                let mut sent = 0;
                for frame in frames {
                    // SAFETY: sockaddr_ll is plain data; frame is valid for its length.
                    let ok = unsafe {
                        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                        addr.sll_family = libc::AF_PACKET as u16;
                        addr.sll_ifindex = index as i32;
                        addr.sll_halen = 6;
                        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
                        libc::sendto(
                            fd,
                            frame.as_ptr().cast(),
                            frame.len(),
                            0,
                            (&addr as *const libc::sockaddr_ll).cast(),
                            std::mem::size_of::<libc::sockaddr_ll>() as u32,
                        ) == frame.len() as isize
                    };
                    if ok {
                        sent += 1;
                    }
                }
                // SAFETY: closing our own descriptor.
                unsafe { libc::close(fd) };
                sent
            })
            .join()
            .unwrap()
    })
}
