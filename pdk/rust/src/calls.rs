//! Calls between plugins: [`call`] another plugin's function; serve calls with
//! [`Plugin::on_call`](crate::Plugin::on_call).

use crate::mem::call_out;
use crate::{sys, Result};

/// Runs function `name` of plugin `target` (or of the one plugin that provides
/// `target`) with `args`, and returns its answer. The manifest must list the target
/// in `depends_on`, or it or a name it provides in `consumes` (else
/// [`Status::Denied`](crate::Status::Denied)). A call cycle is `Invalid` at once, a
/// target busy past this step's deadline `Timeout`, a stopped one `Unavailable`;
/// the error's message says which.
///
/// ```no_run
/// let user = pulp_pdk::calls::call("auth", "verify", b"demo-token")?;
/// # Ok::<(), pulp_pdk::Error>(())
/// ```
pub fn call(target: &str, name: &str, args: &[u8]) -> Result<Vec<u8>> {
    call_out(format_args!("pulp_call {target}.{name}"), |p, n| {
        // SAFETY: three live buffers and two live out-pointers.
        unsafe {
            sys::pulp_call(
                target.as_ptr(),
                target.len(),
                name.as_ptr(),
                name.len(),
                args.as_ptr(),
                args.len(),
                p,
                n,
            )
        }
    })
}
