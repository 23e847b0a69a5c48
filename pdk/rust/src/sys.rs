//! The raw imports of module `pulp` (ABI.md §4), one line each. Off wasm (unit
//! tests on the build machine) every import answers 99, NOT_DECLARED: there is no
//! host.

macro_rules! imports {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        #[cfg(target_arch = "wasm32")]
        #[link(wasm_import_module = "pulp")]
        extern "C" {
            $(pub fn $name($($arg: $ty),*) -> i32;)*
        }
        $(
            #[cfg(not(target_arch = "wasm32"))]
            #[allow(clippy::missing_safety_doc, clippy::too_many_arguments, unused_variables)]
            pub unsafe fn $name($($arg: $ty),*) -> i32 {
                99
            }
        )*
    };
}

imports! {
    last_error(out: *mut u32, out_len: *mut u32);
    log(level: i32, msg: *const u8, len: usize);
    pulp_call(target: *const u8, target_len: usize, name: *const u8, name_len: usize, args: *const u8, args_len: usize, out: *mut u32, out_len: *mut u32);
    entropy_fill(buf: *mut u8, len: usize);
    entropy_read(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    sqlite_exec(q: *const u8, q_len: usize, p: *const u8, p_len: usize, out: *mut u32, out_len: *mut u32);
    sqlite_query(q: *const u8, q_len: usize, p: *const u8, p_len: usize, out: *mut u32, out_len: *mut u32);
    fs_read(path: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    fs_write(path: *const u8, len: usize, data: *const u8, data_len: usize);
    fs_delete(path: *const u8, len: usize);
    http_fetch(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    http_register(req: *const u8, len: usize);
    http_respond(req: *const u8, len: usize);
    ws_register(path: *const u8, len: usize);
    ws_send(req: *const u8, len: usize);
    ws_close(req: *const u8, len: usize);
    sse_register(path: *const u8, len: usize);
    sse_emit(req: *const u8, len: usize);
    docker_run(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    docker_create(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    docker_get(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    docker_list(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    docker_exec(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    docker_logs(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    docker_stats(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    docker_files_read(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    docker_events_poll(req: *const u8, len: usize, out: *mut u32, out_len: *mut u32);
    docker_files_write(req: *const u8, len: usize);
    docker_restart(req: *const u8, len: usize);
    docker_destroy(req: *const u8, len: usize);
}
