//! The polyglot reference filter in Zig, for the kwex core-module ABI v1
//! (guest-sdk/ABI.md). See ../README.md for the behaviour.
//!
//! JSON with std.json (into std.json.Value, a repeated key keeps its last
//! value). Memory from std.heap.wasm_allocator; no WASI imports.
//! Build: see build.sh (zig build-exe -target wasm32-freestanding -fno-entry -rdynamic).
const std = @import("std");
const json = std.json;

const gpa = std.heap.wasm_allocator;

const KEEP = [_]u8{0x00};
const DROP = [_]u8{0x01};
const ERR_CONFIG_JSON = "\x04config: not valid JSON";
const ERR_CONFIG_TYPE = "\x04config: expected a JSON object or null";
const ERR_ROUTES = "\x04config: \"routes\" must be an object mapping namespaces to index names";
const ERR_DOC_JSON = "\x04document: not valid JSON";
const ERR_DOC_TYPE = "\x04document: not a JSON object";
const ERR_OOM = "\x04out of memory";

const parse_options: json.ParseOptions = .{
    .duplicate_field_behavior = .use_last,
    .parse_numbers = false, // numbers are never looked at: keep them as text
};

/// Namespace -> result bytes (0x03 then the index name), all in `config_arena`.
var routes: std.StringArrayHashMapUnmanaged([]const u8) = .empty;
var config_arena = std.heap.ArenaAllocator.init(gpa);

fn result(bytes: []const u8) i64 {
    const packed_value = (@as(u64, @intFromPtr(bytes.ptr)) << 32) | @as(u64, @intCast(bytes.len));
    return @bitCast(packed_value);
}

export fn kwex_abi_v1() void {}

export fn alloc(len: u32) u32 {
    const buf = gpa.alloc(u8, len) catch return 0;
    return @intFromPtr(buf.ptr);
}

export fn dealloc(ptr: u32, len: u32) void {
    const p: [*]u8 = @ptrFromInt(ptr);
    gpa.free(p[0..len]);
}

export fn init(ptr: [*]const u8, len: u32) i64 {
    routes = .empty;
    _ = config_arena.reset(.free_all);
    return loadConfig(ptr[0..len]) catch |err| switch (err) {
        error.OutOfMemory => result(ERR_OOM),
    };
}

fn loadConfig(text: []const u8) error{OutOfMemory}!i64 {
    const arena = config_arena.allocator();
    const config = json.parseFromSliceLeaky(json.Value, arena, text, parse_options) catch |err| switch (err) {
        error.OutOfMemory => return error.OutOfMemory,
        else => return result(ERR_CONFIG_JSON),
    };
    const object = switch (config) {
        .null => return result(&KEEP),
        .object => |o| o,
        else => return result(ERR_CONFIG_TYPE),
    };
    const routes_value = object.get("routes") orelse return result(&KEEP);
    const table = switch (routes_value) {
        .object => |o| o,
        else => return result(ERR_ROUTES),
    };
    var it = table.iterator();
    while (it.next()) |entry| {
        const index = switch (entry.value_ptr.*) {
            .string => |s| s,
            else => {
                routes = .empty;
                const msg = try std.fmt.allocPrint(arena, "\x04config: the index for namespace \"{s}\" must be a string", .{entry.key_ptr.*});
                return result(msg);
            },
        };
        const verdict = try arena.alloc(u8, 1 + index.len);
        verdict[0] = 0x03;
        @memcpy(verdict[1..], index);
        try routes.put(arena, entry.key_ptr.*, verdict);
    }
    return result(&KEEP);
}

export fn filter(ptr: [*]const u8, len: u32) i64 {
    const parsed = json.parseFromSlice(json.Value, gpa, ptr[0..len], parse_options) catch |err| switch (err) {
        error.OutOfMemory => return result(ERR_OOM),
        else => return result(ERR_DOC_JSON),
    };
    defer parsed.deinit();
    const doc = switch (parsed.value) {
        .object => |o| o,
        else => return result(ERR_DOC_TYPE),
    };
    const is_warning = if (doc.get("type")) |t| switch (t) {
        .string => |s| std.mem.eql(u8, s, "Warning"),
        else => false,
    } else false;
    if (!is_warning) return result(&DROP);
    const metadata = doc.get("metadata") orelse return result(&KEEP);
    if (metadata != .object) return result(&KEEP);
    const ns = metadata.object.get("namespace") orelse return result(&KEEP);
    if (ns != .string) return result(&KEEP);
    // The route's bytes live in the config arena: valid after `parsed` is freed.
    const verdict = routes.get(ns.string) orelse return result(&KEEP);
    return result(verdict);
}
