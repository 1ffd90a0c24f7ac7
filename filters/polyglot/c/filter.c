// The polyglot reference filter in C, for the kwex core-module ABI v1
// (guest-sdk/ABI.md). See ../README.md for the behaviour.
//
// No library beyond wasi-libc's malloc/free/memcpy/memcmp: the JSON parser is
// below. It validates the whole input (RFC 8259 grammar; the host already
// guarantees UTF-8, so bytes >= 0x80 inside strings are taken as they are),
// decodes string escapes (\uXXXX with surrogate pairs; a lone surrogate
// becomes U+FFFD), and limits nesting to MAX_DEPTH.
//
// The same file builds two filters (see ../build.sh):
// - the core module (ABI v1): clang --target=wasm32-wasi -mexec-model=reactor
// - with -DKWEX_COMPONENT, the core module of a component of the world
//   kwex:filter@1.0.0 (guest-sdk/wit/filter.wit): the canonical ABI written
//   by hand at the end of this file (no wit-bindgen), then `jco embed` and
//   `jco new` (wasm-tools in JavaScript) make the component.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))
#define MAX_DEPTH 128

// ---------------------------------------------------------------- results --

static const unsigned char KEEP[1] = {0x00};
static const unsigned char DROP[1] = {0x01};

static int64_t result(const void *ptr, uint32_t len) {
    return (int64_t)(((uint64_t)(uintptr_t)ptr << 32) | len);
}

// An error result: 0x04 then the message, in a buffer we own until the next
// call (the host copies it before calling anything else).
static unsigned char *err_buf = NULL;

static int64_t error_result(const char *prefix, const char *detail, const char *suffix) {
    size_t a = strlen(prefix), b = detail ? strlen(detail) : 0, c = suffix ? strlen(suffix) : 0;
    free(err_buf);
    err_buf = malloc(1 + a + b + c);
    if (!err_buf) __builtin_trap();
    err_buf[0] = 0x04;
    memcpy(err_buf + 1, prefix, a);
    if (b) memcpy(err_buf + 1 + a, detail, b);
    if (c) memcpy(err_buf + 1 + a + b, suffix, c);
    return result(err_buf, (uint32_t)(1 + a + b + c));
}

// ------------------------------------------------------------ JSON parser --

typedef struct {
    const unsigned char *p, *end;
    int depth;
} Parser;

// A decoded string: bytes in a growable buffer (NUL bytes allowed).
typedef struct {
    unsigned char *data;
    size_t len, cap;
} Buf;

static int buf_push(Buf *b, const unsigned char *s, size_t n) {
    if (!b) return 1;  // decoding not wanted: validate only
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n) cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 1;
}

static void skip_ws(Parser *ps) {
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(Parser *ps, uint32_t *out) {
    if (ps->end - ps->p < 4) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = ps->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return 0;
    }
    ps->p += 4;
    *out = v;
    return 1;
}

static int push_utf8(Buf *b, uint32_t cp) {
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = 0xC0 | (cp >> 6); u[1] = 0x80 | (cp & 0x3F); n = 2; }
    else if (cp < 0x10000) {
        u[0] = 0xE0 | (cp >> 12); u[1] = 0x80 | ((cp >> 6) & 0x3F); u[2] = 0x80 | (cp & 0x3F); n = 3;
    } else {
        u[0] = 0xF0 | (cp >> 18); u[1] = 0x80 | ((cp >> 12) & 0x3F);
        u[2] = 0x80 | ((cp >> 6) & 0x3F); u[3] = 0x80 | (cp & 0x3F); n = 4;
    }
    return buf_push(b, u, n);
}

// Parses a string starting at '"'. Appends its decoded bytes to `out` if
// not NULL. Returns 0 on a syntax error (or out of memory).
static int parse_string(Parser *ps, Buf *out) {
    if (ps->p >= ps->end || *ps->p != '"') return 0;
    ps->p++;
    for (;;) {
        // The run of plain bytes up to the next quote, backslash or control.
        const unsigned char *run = ps->p;
        while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' && *ps->p >= 0x20) ps->p++;
        if (ps->p > run && !buf_push(out, run, (size_t)(ps->p - run))) return 0;
        if (ps->p >= ps->end || *ps->p < 0x20) return 0;  // unterminated, or a raw control
        if (*ps->p == '"') { ps->p++; return 1; }
        ps->p++;  // the backslash
        if (ps->p >= ps->end) return 0;
        unsigned char c = *ps->p++, e;
        switch (c) {
            case '"': e = '"'; break;
            case '\\': e = '\\'; break;
            case '/': e = '/'; break;
            case 'b': e = '\b'; break;
            case 'f': e = '\f'; break;
            case 'n': e = '\n'; break;
            case 'r': e = '\r'; break;
            case 't': e = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (!hex4(ps, &cp)) return 0;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    // A high surrogate: a low one must follow to make a pair.
                    const unsigned char *save = ps->p;
                    uint32_t lo;
                    if (ps->end - ps->p >= 2 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                        ps->p += 2;
                        if (!hex4(ps, &lo)) return 0;
                        if (lo >= 0xDC00 && lo <= 0xDFFF) {
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        } else {
                            ps->p = save;  // not a pair: decode the next escape on its own
                            cp = 0xFFFD;
                        }
                    } else {
                        cp = 0xFFFD;
                    }
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    cp = 0xFFFD;
                }
                if (!push_utf8(out, cp)) return 0;
                continue;
            }
            default: return 0;
        }
        if (!buf_push(out, &e, 1)) return 0;
    }
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int parse_number(Parser *ps) {
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p >= ps->end) return 0;
    if (*ps->p == '0') ps->p++;
    else if (*ps->p >= '1' && *ps->p <= '9') while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
    else return 0;
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p)) return 0;
        while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || !is_digit(*ps->p)) return 0;
        while (ps->p < ps->end && is_digit(*ps->p)) ps->p++;
    }
    return 1;
}

static int parse_literal(Parser *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return 0;
    ps->p += n;
    return 1;
}

static int skip_value(Parser *ps);

// Walks an object whose '{' is at ps->p. For each member, `member` is called
// with the decoded key and must consume the value (returning 0 on error).
typedef int (*MemberFn)(Parser *ps, const Buf *key, void *ctx);

static int parse_object(Parser *ps, MemberFn member, void *ctx) {
    if (ps->p >= ps->end || *ps->p != '{') return 0;
    if (++ps->depth > MAX_DEPTH) return 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') { ps->p++; ps->depth--; return 1; }
    Buf key = {0};
    int ok = 0;
    for (;;) {
        skip_ws(ps);
        key.len = 0;
        if (!parse_string(ps, member ? &key : NULL)) break;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') break;
        ps->p++;
        skip_ws(ps);
        if (!(member ? member(ps, &key, ctx) : skip_value(ps))) break;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == '}') { ps->p++; ok = 1; }
        break;
    }
    free(key.data);
    ps->depth--;
    return ok;
}

static int parse_array(Parser *ps) {
    if (++ps->depth > MAX_DEPTH) return 0;
    ps->p++;  // '['
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') { ps->p++; ps->depth--; return 1; }
    for (;;) {
        skip_ws(ps);
        if (!skip_value(ps)) return 0;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == ']') { ps->p++; ps->depth--; return 1; }
        return 0;
    }
}

// Validates and skips one value at ps->p (no leading whitespace).
static int skip_value(Parser *ps) {
    if (ps->p >= ps->end) return 0;
    switch (*ps->p) {
        case '{': return parse_object(ps, NULL, NULL);
        case '[': return parse_array(ps);
        case '"': return parse_string(ps, NULL);
        case 't': return parse_literal(ps, "true");
        case 'f': return parse_literal(ps, "false");
        case 'n': return parse_literal(ps, "null");
        default: return parse_number(ps);
    }
}

static int key_is(const Buf *key, const char *s) {
    size_t n = strlen(s);
    return key->len == n && memcmp(key->data, s, n) == 0;
}

// A string value into `out` (replacing what it held); `*is_string` tells
// whether the value was a string at all (otherwise it is skipped).
static int string_or_skip(Parser *ps, Buf *out, int *is_string) {
    if (ps->p < ps->end && *ps->p == '"') {
        out->len = 0;
        *is_string = 1;
        return parse_string(ps, out);
    }
    *is_string = 0;
    return skip_value(ps);
}

// ----------------------------------------------------------------- config --

// One route: the namespace and the prepared result, 0x03 + index name.
typedef struct {
    Buf ns;
    Buf verdict;
} Route;

static Route *routes = NULL;
static size_t n_routes = 0, cap_routes = 0;

static void clear_routes(void) {
    for (size_t i = 0; i < n_routes; i++) { free(routes[i].ns.data); free(routes[i].verdict.data); }
    n_routes = 0;
}

typedef struct {
    const char *bad_key;     // the namespace whose index is not a string
    Buf bad_key_buf;
    int routes_not_object;
} ConfigCtx;

static int route_member(Parser *ps, const Buf *key, void *vctx) {
    ConfigCtx *ctx = vctx;
    if (ps->p >= ps->end || *ps->p != '"') {
        if (!ctx->bad_key) {
            ctx->bad_key_buf.len = 0;
            static const unsigned char nul = 0;
            if (!buf_push(&ctx->bad_key_buf, key->data, key->len) || !buf_push(&ctx->bad_key_buf, &nul, 1))
                return 0;
            ctx->bad_key = (const char *)ctx->bad_key_buf.data;
        }
        return skip_value(ps);
    }
    if (n_routes == cap_routes) {
        size_t cap = cap_routes ? cap_routes * 2 : 8;
        Route *r = realloc(routes, cap * sizeof *r);
        if (!r) return 0;
        routes = r;
        cap_routes = cap;
    }
    Route *r = &routes[n_routes];
    memset(r, 0, sizeof *r);
    static const unsigned char code = 0x03;
    if (!buf_push(&r->ns, key->data ? key->data : (const unsigned char *)"", key->len) ||
        !buf_push(&r->verdict, &code, 1) || !parse_string(ps, &r->verdict)) {
        free(r->ns.data); free(r->verdict.data);
        return 0;
    }
    n_routes++;
    return 1;
}

static int config_member(Parser *ps, const Buf *key, void *vctx) {
    ConfigCtx *ctx = vctx;
    if (!key_is(key, "routes")) return skip_value(ps);
    clear_routes();  // a repeated key: the last one counts
    ctx->bad_key = NULL;
    if (ps->p < ps->end && *ps->p == '{') {
        ctx->routes_not_object = 0;
        return parse_object(ps, route_member, ctx);
    }
    ctx->routes_not_object = 1;
    return skip_value(ps);
}

#ifndef KWEX_COMPONENT
EXPORT("kwex_abi_v1") void kwex_abi_v1(void) {}

EXPORT("alloc") void *kwex_alloc(uint32_t len) { return malloc(len); }

EXPORT("dealloc") void kwex_dealloc(void *ptr, uint32_t len) { (void)len; free(ptr); }
#define EXPORT_V1(name) EXPORT(name)
#else
#define EXPORT_V1(name)
#endif

EXPORT_V1("init") int64_t init(const unsigned char *cfg, uint32_t len) {
    Parser ps = {cfg, cfg + len, 0};
    ConfigCtx ctx = {0};
    clear_routes();
    skip_ws(&ps);
    int is_object = ps.p < ps.end && *ps.p == '{';
    int is_null = ps.p < ps.end && *ps.p == 'n';  // `null`, if it parses below
    int ok = is_object ? parse_object(&ps, config_member, &ctx) : skip_value(&ps);
    skip_ws(&ps);
    int64_t res = result(KEEP, 1);
    if (!ok || ps.p != ps.end)
        res = error_result("config: not valid JSON", NULL, NULL);
    else if (!is_object && !is_null)
        res = error_result("config: expected a JSON object or null", NULL, NULL);
    else if (ctx.routes_not_object)
        res = error_result("config: \"routes\" must be an object mapping namespaces to index names", NULL, NULL);
    else if (ctx.bad_key)
        res = error_result("config: the index for namespace \"", ctx.bad_key, "\" must be a string");
    if (res != result(KEEP, 1)) clear_routes();
    free(ctx.bad_key_buf.data);
    return res;
}

// --------------------------------------------------------------- filter --

typedef struct {
    Buf type, ns;
    int has_type, has_ns;
} DocCtx;

static int metadata_member(Parser *ps, const Buf *key, void *vctx) {
    DocCtx *d = vctx;
    if (key_is(key, "namespace")) return string_or_skip(ps, &d->ns, &d->has_ns);
    return skip_value(ps);
}

static int doc_member(Parser *ps, const Buf *key, void *vctx) {
    DocCtx *d = vctx;
    if (key_is(key, "type")) return string_or_skip(ps, &d->type, &d->has_type);
    if (key_is(key, "metadata")) {
        d->has_ns = 0;  // a repeated key: the last one counts
        if (ps->p < ps->end && *ps->p == '{') return parse_object(ps, metadata_member, d);
        return skip_value(ps);
    }
    return skip_value(ps);
}

EXPORT_V1("filter") int64_t filter(const unsigned char *doc, uint32_t len) {
    Parser ps = {doc, doc + len, 0};
    DocCtx d = {0};
    skip_ws(&ps);
    int is_object = ps.p < ps.end && *ps.p == '{';
    int ok = is_object ? parse_object(&ps, doc_member, &d) : skip_value(&ps);
    skip_ws(&ps);
    int64_t res;
    if (!ok || ps.p != ps.end) {
        res = error_result("document: not valid JSON", NULL, NULL);
    } else if (!is_object) {
        res = error_result("document: not a JSON object", NULL, NULL);
    } else if (!d.has_type || d.type.len != 7 || memcmp(d.type.data, "Warning", 7) != 0) {
        res = result(DROP, 1);
    } else {
        res = result(KEEP, 1);
        if (d.has_ns) {
            // The last matching route wins, like a JSON object with a repeated key.
            for (size_t i = n_routes; i-- > 0;) {
                if (routes[i].ns.len == d.ns.len &&
                    (d.ns.len == 0 || memcmp(routes[i].ns.data, d.ns.data, d.ns.len) == 0)) {
                    res = result(routes[i].verdict.data, (uint32_t)routes[i].verdict.len);
                    break;
                }
            }
        }
    }
    free(d.type.data);
    free(d.ns.data);
    return res;
}

#ifdef KWEX_COMPONENT
// ---------------------------------------------- the component's canonical ABI --
//
// The world's two exports, lowered as the canonical ABI says: a string
// parameter is (ptr, len) in memory the host got from cabi_realloc (ours to
// free); a result that does not fit in one value is written to a return
// area whose address is returned. They call the functions above and convert
// their ABI v1 results (code byte + payload). Returned strings point into
// the routes or the error buffer, which stay intact until the next call, so
// there is nothing to free after the host has read them (no cabi_post_*).

EXPORT("cabi_realloc") void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    (void)old_size; (void)align;  // malloc aligns to 16
    if (new_size == 0) return (void *)align;  // never dereferenced
    void *p = realloc(old, new_size);
    if (!p) __builtin_trap();
    return p;
}

static _Alignas(4) unsigned char ret_area[28];

static void put_u32(unsigned offset, uint32_t v) { memcpy(ret_area + offset, &v, 4); }

static void decode(int64_t r, const unsigned char **ptr, uint32_t *len) {
    *ptr = (const unsigned char *)(uintptr_t)((uint64_t)r >> 32);
    *len = (uint32_t)r;
}

// init: func(config: string) -> result<_, string>
// Return area: [0] 0 = ok, 1 = err; err: [4] ptr, [8] len.
EXPORT("init") void *component_init(unsigned char *cfg, uint32_t len) {
    const unsigned char *res;
    uint32_t n;
    decode(init(cfg, len), &res, &n);
    free(cfg);
    memset(ret_area, 0, sizeof ret_area);
    if (res[0] == 0x04) {
        ret_area[0] = 1;
        put_u32(4, (uint32_t)(uintptr_t)(res + 1));
        put_u32(8, n - 1);
    }
    return ret_area;
}

// filter: func(document: string) -> result<verdict, string>
// Return area: [0] 0 = ok, 1 = err. ok: [4] verdict case (keep 0, drop 1,
// replace 2, route 3); route: [8] index ptr, [12] len, [16] option tag of the
// document (0 = none). err: [4] ptr, [8] len.
EXPORT("filter") void *component_filter(unsigned char *doc, uint32_t len) {
    const unsigned char *res;
    uint32_t n;
    decode(filter(doc, len), &res, &n);
    free(doc);
    memset(ret_area, 0, sizeof ret_area);
    switch (res[0]) {
        case 0x00: ret_area[4] = 0; break;
        case 0x01: ret_area[4] = 1; break;
        case 0x03:  // this filter never sends a new document along
            ret_area[4] = 3;
            put_u32(8, (uint32_t)(uintptr_t)(res + 1));
            put_u32(12, n - 1);
            ret_area[16] = 0;
            break;
        default:  // 0x04
            ret_area[0] = 1;
            put_u32(4, (uint32_t)(uintptr_t)(res + 1));
            put_u32(8, n - 1);
    }
    return ret_area;
}
#endif
