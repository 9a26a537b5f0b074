//! systemd's readiness protocol (`Type=notify`, sd_notify(3)): one datagram
//! to the socket named by `$NOTIFY_SOCKET` (a path, or an abstract name
//! after `@`). `READY=1` once the listeners are bound, `RELOADING=1` then
//! `READY=1` around a reload, `STOPPING=1` at shutdown. Without the
//! variable (not started by systemd) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` to the service manager, if there is one; a failure is
/// returned for the log (the gateway runs on either way).
pub fn notify(state: &str) -> Result<(), String> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        }
        None => SocketAddr::from_pathname(&path),
    }
    .map_err(|e| format!("NOTIFY_SOCKET {path:?}: {e}"))?;
    let socket = UnixDatagram::unbound().map_err(|e| format!("sd_notify: {e}"))?;
    socket
        .send_to_addr(state.as_bytes(), &addr)
        .map(|_| ())
        .map_err(|e| format!("sd_notify to {path:?}: {e}"))
}
