//! Calls WASI preview 1 functions directly (declared by hand, so that it
//! builds for wasm32-unknown-unknown) and replaces the document with what
//! the sandbox answered, so a test can check that nothing is granted:
//! no environment, no arguments, a clock frozen at 0, no preopened directory.
//! It also writes to stdout and stderr (captured into kwex's log), floods
//! stdout on `hostile-flood` (the log is rate-limited) and calls
//! `proc_exit(3)` on `hostile-exit`.

guest_util::abi_v1!();

static mut INITIALIZED: bool = false;

/// Run by the host once after instantiation, before anything else (what
/// reactor modules do for static constructors).
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    // SAFETY: single-threaded; written once here, read in `filter`.
    unsafe { INITIALIZED = true };
}

#[repr(C)]
struct Ciovec {
    buf: *const u8,
    len: usize,
}

#[repr(C)]
struct Iovec {
    buf: *mut u8,
    len: usize,
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn fd_write(fd: i32, iovs: *const Ciovec, iovs_len: i32, nwritten: *mut usize) -> i32;
    fn fd_read(fd: i32, iovs: *const Iovec, iovs_len: i32, nread: *mut usize) -> i32;
    fn environ_sizes_get(count: *mut usize, size: *mut usize) -> i32;
    fn args_sizes_get(count: *mut usize, size: *mut usize) -> i32;
    fn clock_time_get(id: i32, precision: i64, time: *mut u64) -> i32;
    fn random_get(buf: *mut u8, len: usize) -> i32;
    fn fd_prestat_get(fd: i32, prestat: *mut u8) -> i32;
    fn path_open(
        fd: i32,
        dirflags: i32,
        path: *const u8,
        path_len: usize,
        oflags: i32,
        rights_base: i64,
        rights_inheriting: i64,
        fdflags: i32,
        opened: *mut i32,
    ) -> i32;
    fn proc_exit(code: i32) -> !;
}

fn write(fd: i32, text: &[u8]) -> i32 {
    let iov = Ciovec {
        buf: text.as_ptr(),
        len: text.len(),
    };
    let mut written = 0;
    // SAFETY: one iovec over a live slice.
    unsafe { fd_write(fd, &iov, 1, &mut written) }
}

/// Probes the sandbox and reports.
#[unsafe(no_mangle)]
pub extern "C" fn filter(ptr: i32, len: i32) -> i64 {
    // SAFETY: the host lent these bytes for this call.
    let doc = unsafe { guest_util::input(ptr, len) };
    if guest_util::contains(doc, b"hostile-exit") {
        // SAFETY: a WASI call; the host turns it into a trap.
        unsafe { proc_exit(3) }
    }
    if guest_util::contains(doc, b"hostile-flood") {
        for _ in 0..500 {
            write(1, b"flood flood flood flood flood flood flood flood\n");
        }
    }
    let stdout_errno = write(1, b"probe: hello from stdout\n");
    let stderr_errno = write(2, b"probe: hello from stderr\n");
    let bad_fd_errno = write(7, b"nobody reads this\n");

    let (mut environ, mut environ_size, mut args, mut args_size) = (99, 99, 99, 99);
    let mut time = 0u64;
    let mut random = [0u8; 32];
    let mut prestat = [0u8; 8];
    let mut opened = -1;
    let mut stdin = [0u8; 16];
    let stdin_iov = Iovec {
        buf: stdin.as_mut_ptr(),
        len: stdin.len(),
    };
    let mut nread = 99;
    let path = b"etc/passwd";
    // SAFETY: every pointer is to a live local of the right size.
    let (
        environ_errno,
        args_errno,
        clock_errno,
        random_errno,
        prestat_errno,
        open_errno,
        read_errno,
    ) = unsafe {
        (
            environ_sizes_get(&mut environ, &mut environ_size),
            args_sizes_get(&mut args, &mut args_size),
            clock_time_get(0, 1, &mut time),
            random_get(random.as_mut_ptr(), random.len()),
            fd_prestat_get(3, prestat.as_mut_ptr()),
            path_open(3, 0, path.as_ptr(), path.len(), 0, -1, -1, 0, &mut opened),
            fd_read(0, &stdin_iov, 1, &mut nread),
        )
    };
    let random_nonzero = random.iter().any(|&b| b != 0);
    // SAFETY: single-threaded; see `_initialize`.
    let initialized = unsafe { INITIALIZED };
    let report = format!(
        concat!(
            "{{\"initialized\":{},\"stdout_errno\":{},\"stderr_errno\":{},\"bad_fd_errno\":{},",
            "\"environ_errno\":{},\"environ\":{},\"environ_size\":{},",
            "\"args_errno\":{},\"args\":{},\"args_size\":{},",
            "\"clock_errno\":{},\"clock_time\":{},\"random_errno\":{},\"random_nonzero\":{},",
            "\"prestat_errno\":{},\"path_open_errno\":{},\"stdin_errno\":{},\"stdin_read\":{}}}"
        ),
        initialized,
        stdout_errno,
        stderr_errno,
        bad_fd_errno,
        environ_errno,
        environ,
        environ_size,
        args_errno,
        args,
        args_size,
        clock_errno,
        time,
        random_errno,
        random_nonzero,
        prestat_errno,
        open_errno,
        read_errno,
        nread,
    );
    guest_util::replace(report.as_bytes())
}
