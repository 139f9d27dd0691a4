//! Persistent TAP interfaces owned by a user and group, so the VMM can
//! open them without root (`ip tuntap add dev NAME mode tap user U group
//! G`). Netlink cannot create a TAP; the `/dev/net/tun` ioctls can. The
//! TAP stays after the file is closed (`TUNSETPERSIST`) and is deleted
//! like any link. The CLAT's layer-3 TUN is made the same way.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

/// A TAP could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make TAP {name} ({step})")]
pub struct TapError {
    /// The TAP.
    pub name: String,
    /// Which ioctl or file.
    pub step: &'static str,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Opens TAP `name` (creating it if missing): the open file is the
/// TAP's queue, which a VMM can be handed (`-netdev tap,fd=N`).
pub fn open(name: &str) -> Result<std::fs::File, TapError> {
    attach(name, libc::IFF_TAP | libc::IFF_NO_PI)
}

/// Attaches to the TUN/TAP `name` of kind `flags` (creating it if missing).
fn attach(name: &str, flags: libc::c_int) -> Result<std::fs::File, TapError> {
    let fail = |step: &'static str| {
        let name = name.to_owned();
        move |source| TapError { name, step, source }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(fail("open /dev/net/tun"))?;
    let fd = file.as_raw_fd();
    // SAFETY: an all-zero `ifreq` is a valid value (empty name, zero union).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *slot = byte as libc::c_char;
    }
    // At most 15 bytes are copied, so the 16th stays NUL.
    request.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: `fd` is an open /dev/net/tun descriptor and `request` a
    // valid, initialised `ifreq` that outlives the call.
    if unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut request) } < 0 {
        return Err(fail("TUNSETIFF")(std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Creates the persistent TAP `name` (or attaches to the one that exists)
/// and sets its owner and group; `None` leaves them as they are.
pub fn ensure(name: &str, user: Option<u32>, group: Option<u32>) -> Result<(), TapError> {
    persist(&open(name)?, name, user, group)
}

/// Creates the persistent layer-3 TUN `name` (or attaches to the one that
/// exists), with no owner, so only CAP_NET_ADMIN may attach
/// (`ip tuntap add dev NAME mode tun`). Whoever attaches next (tayga)
/// sets its own flags.
pub fn ensure_tun(name: &str) -> Result<(), TapError> {
    persist(
        &attach(name, libc::IFF_TUN | libc::IFF_NO_PI)?,
        name,
        None,
        None,
    )
}

/// Sets the owner and group of the TUN/TAP `file` is attached to, and
/// makes it outlive `file`.
fn persist(
    file: &std::fs::File,
    name: &str,
    user: Option<u32>,
    group: Option<u32>,
) -> Result<(), TapError> {
    let fail = |step: &'static str| {
        let name = name.to_owned();
        move |source| TapError { name, step, source }
    };
    let fd = file.as_raw_fd();
    let set = |op, value: libc::c_ulong, step: &'static str| {
        // SAFETY: these ioctls take an integer argument by value on the
        // descriptor `TUNSETIFF` just attached.
        if unsafe { libc::ioctl(fd, op, value) } < 0 {
            return Err(fail(step)(std::io::Error::last_os_error()));
        }
        Ok(())
    };
    // The kernel takes no "no owner" value: without one, root alone may
    // open the TAP (and an owner set earlier stays).
    if let Some(user) = user {
        set(libc::TUNSETOWNER, libc::c_ulong::from(user), "TUNSETOWNER")?;
    }
    if let Some(group) = group {
        set(libc::TUNSETGROUP, libc::c_ulong::from(group), "TUNSETGROUP")?;
    }
    set(libc::TUNSETPERSIST, 1, "TUNSETPERSIST")
}
