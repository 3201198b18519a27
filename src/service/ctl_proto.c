/* SPDX-License-Identifier: MIT */
#include "ctl_proto.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "config.h"
#include "explain.h"
#include "util.h"
#include "watcher.h"

struct ctl_reply {
    json_t *o;
    json_t *list;
    const char *list_key;      /* where the list goes in o */
};

/* --- default paths ------------------------------------------------------- */

/* An environment variable that names an absolute path, or NULL. */
static const char *
abs_env(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && v[0] == '/' ? v : NULL;
}

char *
ctl_default_config(uid_t euid, char **err_r)
{
    const char *base = abs_env("XDG_CONFIG_HOME"), *home;
    struct passwd *pw;

    if (euid == 0)
        return xstrdup(CTL_SYSTEM_CONFIG);
    if (base != NULL)
        return xasprintf("%s/imapsweep/imapsweep.yaml", base);
    home = abs_env("HOME");
    if (home == NULL && (pw = getpwuid(euid)) != NULL && pw->pw_dir != NULL &&
        pw->pw_dir[0] == '/')
        home = pw->pw_dir;
    if (home == NULL) {
        *err_r = xasprintf("no home directory for uid %lu (neither "
                           "XDG_CONFIG_HOME nor HOME is set): name the "
                           "configuration with -c FILE",
                           (unsigned long)euid);
        return NULL;
    }
    return xasprintf("%s/.config/imapsweep/imapsweep.yaml", home);
}

char *
ctl_socket_dir(uid_t euid, bool system, char **err_r)
{
    const char *run = abs_env("XDG_RUNTIME_DIR");

    if (euid == 0 || system)
        return xstrdup(CTL_SYSTEM_SOCKET_DIR);
    if (run == NULL) {
        *err_r = xstrdup("XDG_RUNTIME_DIR is not set (no login session?): "
                         "name the control socket");
        return NULL;
    }
    return xasprintf("%s/imapsweep", run);
}

char *
ctl_instance_socket(const char *dir, const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 64 || name[0] == '.' ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789._-@:") != n)
        return NULL;
    return xasprintf("%s/%s.sock", dir, name);
}

/* --- requests ------------------------------------------------------------ */

static int
split_json(const char *line, size_t len, char ***words_r)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *cmd, *args;
    char **words = NULL;
    size_t n = 0;

    if (!json_is_object(o))
        goto bad;
    cmd = json_object_get(o, "cmd");
    args = json_object_get(o, "args");
    if (!json_is_string(cmd) || (args != NULL && !json_is_array(args)))
        goto bad;
    words = xcalloc(1 + json_array_size(args) + 1, sizeof(*words));
    words[n++] = xstrdup(json_string_value(cmd));
    for (size_t i = 0; i < json_array_size(args); i++) {
        json_t *a = json_array_get(args, i);

        if (!json_is_string(a))
            goto bad;
        words[n++] = xstrdup(json_string_value(a));
    }
    json_decref(o);
    *words_r = words;
    return (int)n;
bad:
    for (size_t i = 0; i < n; i++)
        free(words[i]);
    free(words);
    json_decref(o);
    return -1;
}

int
ctl_request_split(const char *line, size_t len, char ***words_r)
{
    char **words = NULL;
    size_t n = 0, cap = 0, i = 0;
    struct buf w;

    while (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
        line++;
        len--;
    }
    if (len > 0 && line[0] == '{')
        return split_json(line, len, words_r);
    buf_init(&w, BUF_NOCAP);
    while (i < len) {
        bool quoted = false;

        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len)
            break;
        buf_reset(&w);
        while (i < len && (quoted || (line[i] != ' ' && line[i] != '\t'))) {
            if (line[i] == '"') {
                quoted = !quoted;
            } else if (line[i] == '\\') {
                if (++i == len)
                    goto bad;
                buf_append_char(&w, line[i]);
            } else {
                buf_append_char(&w, line[i]);
            }
            i++;
        }
        if (quoted)
            goto bad;
        ARRAY_GROW(words, cap, n + 2);
        words[n++] = xstrdup(buf_cstr(&w));
        words[n] = NULL;
    }
    buf_free(&w);
    *words_r = words;
    return (int)n;
bad:
    buf_free(&w);
    for (size_t k = 0; k < n; k++)
        free(words[k]);
    free(words);
    return -1;
}

char *
ctl_request_encode(const char *cmd, const char *const *args, size_t n_args)
{
    json_t *req, *a = json_array();
    char *line;

    /* JSON framing keeps mailbox names with spaces intact */
    for (size_t i = 0; i < n_args; i++) {
        json_t *s = json_string(args[i]);

        /* never drop one: "sweep ACCOUNT <bad>" would sweep them all */
        if (s == NULL) {
            json_decref(a);
            return NULL;
        }
        json_array_append_new(a, s);
    }
    req = json_pack("{s:s, s:o}", "cmd", cmd, "args", a);
    line = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return line;
}

/* --- replies (the daemon's side) ----------------------------------------- */

/* One line of ASCII: what the socket sends (the newline is the server's). */
static char *
encode(json_t *reply)
{
    /* 15 digits: 0.001 stays "0.001", not 0.0010000000000000000208 */
    char *text = json_dumps(reply, JSON_COMPACT | JSON_ENSURE_ASCII |
                                       JSON_REAL_PRECISION(15));

    json_decref(reply);
    if (text == NULL)
        text = xstrdup("{\"ok\":false,\"error\":\"cannot encode reply\"}");
    return text;
}

/* s as a JSON string. Text from outside (a server's reply, a file name)
 * need not be UTF-8, and jansson refuses such a string: its invalid bytes
 * become U+FFFD rather than the string vanishing from the reply. */
static json_t *
json_text(const char *s)
{
    struct buf b;
    json_t *j;

    if (util_utf8_valid(s, strlen(s)))
        return json_string(s);
    buf_init(&b, BUF_NOCAP);
    buf_append_utf8(&b, s, strlen(s));
    j = json_string(buf_cstr(&b));
    buf_free(&b);
    return j;
}

static char *
iso_time(uint64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char s[32];

    gmtime_r(&tt, &tm);
    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return xstrdup(s);
}

static json_t *
hist_json(const struct watcher_sweep_hist *h)
{
    json_t *b = json_array();

    for (size_t i = 0; i + 1 < WATCHER_SWEEP_BUCKETS; i++)
        json_array_append_new(b, json_integer((json_int_t)h->le[i]));
    return json_pack("{s:I, s:f, s:o}", "count", (json_int_t)h->count,
                     "sum", (double)h->sum_us / 1e6, "buckets", b);
}

/* {"le": [finite bounds], "full": {"count", "sum", "buckets"},
 *  "incremental": {...}}: the last bucket, +Inf, is "count" */
static json_t *
sweep_seconds(const struct watcher_stats *st)
{
    json_t *le = json_array();

    for (size_t i = 0; i + 1 < WATCHER_SWEEP_BUCKETS; i++)
        json_array_append_new(le, json_real(
            (double)watcher_sweep_bounds_us[i] / 1e6));
    return json_pack("{s:o, s:o, s:o}", "le", le, "full",
                     hist_json(&st->full), "incremental",
                     hist_json(&st->incremental));
}

struct ctl_reply *
ctl_reply_status_new(const struct ctl_daemon_info *info)
{
    struct ctl_reply *r = xcalloc(1, sizeof(*r));
    json_t *o = json_object();

    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "version", json_text(info->version));
    json_object_set_new(o, "pid", json_integer(info->pid));
    json_object_set_new(o, "uptime_s", json_integer(
        (json_int_t)info->uptime_s));
    json_object_set_new(o, "config", json_text(info->config));
    json_object_set_new(o, "generation", json_integer(info->generation));
    json_object_set_new(o, "dry_run", json_boolean(info->dry_run));
    if (info->stats != NULL)
        json_object_set_new(o, "sweep_seconds", sweep_seconds(info->stats));
    r->o = o;
    r->list = json_array();
    r->list_key = "watchers";
    return r;
}

void
ctl_reply_status_add(struct ctl_reply *r, const struct watcher_status *st)
{
    json_t *o = json_object(), *caps = json_array(), *actions, *notes;
    char *copy, *tok, *save = NULL;
    uint64_t now = (uint64_t)time(NULL);

    json_object_set_new(o, "account", json_text(st->account));
    json_object_set_new(o, "mailbox", json_text(st->mailbox));
    json_object_set_new(o, "state",
                        json_string(watcher_state_name(st->state)));
    json_object_set_new(o, "state_s", json_integer(
        (json_int_t)(now > st->state_since ? now - st->state_since : 0)));
    json_object_set_new(o, "shared", json_boolean(st->shared));
    json_object_set_new(o, "watched_by",
                        json_string(watcher_via_name(st->via)));
    json_object_set_new(o, "last_event_s",
                        st->last_event == 0
                            ? json_null()
                            : json_integer((json_int_t)(
                                  now > st->last_event ? now - st->last_event
                                                       : 0)));
    copy = xstrdup(st->capabilities);
    for (tok = strtok_r(copy, " ", &save); tok != NULL;
         tok = strtok_r(NULL, " ", &save))
        json_array_append_new(caps, json_text(tok));
    free(copy);
    json_object_set_new(o, "capabilities", caps);
    json_object_set_new(o, "uidvalidity", json_integer(st->uidvalidity));
    json_object_set_new(o, "messages", json_integer(st->messages));
    json_object_set_new(o, "uid_swept", json_integer(st->uid_swept));
    actions = json_object();
    for (size_t i = 0; i < st->n_counts; i++) {
        const struct watcher_count *c = &st->counts[i];
        json_t *rule = json_object_get(actions, c->rule);
        char *key = c->dry ? xasprintf("would_%s", c->action)
                           : xstrdup(c->action);

        if (rule == NULL) {
            rule = json_object();
            json_object_set_new(actions, c->rule, rule);
        }
        json_object_set_new(rule, key, json_integer((json_int_t)c->n));
        free(key);
    }
    json_object_set_new(o, "actions", actions);
    if (st->last_sweep != 0) {
        char *t = iso_time(st->last_sweep);

        json_object_set_new(o, "last_sweep", json_string(t));
        free(t);
    } else {
        json_object_set_new(o, "last_sweep", json_null());
    }
    json_object_set_new(o, "last_sweep_ms",
                        json_integer((json_int_t)st->last_sweep_ms));
    json_object_set_new(o, "reconnects", json_integer(st->reconnects));
    json_object_set_new(o, "last_error", st->last_error
                                             ? json_text(st->last_error)
                                             : json_null());
    notes = json_array();
    for (size_t i = 0; i < st->n_notes; i++)
        json_array_append_new(notes, json_text(st->notes[i]));
    json_object_set_new(o, "notes", notes);
    json_array_append_new(r->list, o);
}

struct ctl_reply *
ctl_reply_swept_new(void)
{
    struct ctl_reply *r = xcalloc(1, sizeof(*r));

    r->o = json_pack("{s:b}", "ok", 1);
    r->list = json_array();
    r->list_key = "swept";
    return r;
}

void
ctl_reply_swept_add(struct ctl_reply *r, const char *account,
                    const char *mailbox)
{
    json_array_append_new(r->list, json_pack("{s:o, s:o}", "account",
                                             json_text(account), "mailbox",
                                             json_text(mailbox)));
}

char *
ctl_reply_finish(struct ctl_reply *r)
{
    json_t *o = r->o;

    json_object_set_new(o, r->list_key, r->list);
    free(r);
    return encode(o);
}

void
ctl_reply_free(struct ctl_reply *r)
{
    if (r == NULL)
        return;
    json_decref(r->list);
    json_decref(r->o);
    free(r);
}

char *
ctl_reply_error(const char *msg)
{
    return encode(json_pack("{s:b, s:o}", "ok", 0, "error", json_text(msg)));
}

char *
ctl_reply_version(const char *version)
{
    return encode(json_pack("{s:b, s:o}", "ok", 1, "version",
                            json_text(version)));
}

char *
ctl_reply_reloaded(unsigned generation)
{
    return encode(json_pack("{s:b, s:i}", "ok", 1, "generation",
                            generation));
}

char *
ctl_reply_reload_failed(const struct config_diag *diag)
{
    json_t *errors = json_array(), *o;
    char *msg;

    for (size_t i = 0; i < diag->n_errors; i++) {
        char *e = config_diag_format(&diag->errors[i]);

        json_array_append_new(errors, json_text(e));
        free(e);
    }
    msg = xasprintf("configuration has %zu error%s; the previous one stays "
                    "in force", json_array_size(errors),
                    json_array_size(errors) == 1 ? "" : "s");
    o = json_pack("{s:b, s:s, s:o}", "ok", 0, "error", msg, "errors",
                  errors);
    free(msg);
    return encode(o);
}

static json_t *
json_tristate(int v)
{
    return v < 0 ? json_null() : json_boolean(v);
}

static json_t *
json_str_or_null(const char *s)
{
    return s != NULL ? json_text(s) : json_null();
}

char *
ctl_reply_explain(const struct explain_report *r)
{
    json_t *x, *rules;

    if (r->error != NULL)
        return ctl_reply_error(r->error);
    rules = json_array();
    for (size_t i = 0; i < r->n_rules; i++) {
        const struct explain_rule *er = &r->rules[i];
        json_t *parts = json_array();

        for (size_t j = 0; j < er->n_parts; j++) {
            const struct explain_part *p = &er->parts[j];

            json_array_append_new(parts, json_pack(
                "{s:o, s:b, s:o}", "text", json_str_or_null(p->text),
                "server", p->server, "holds", json_tristate(p->holds)));
        }
        json_array_append_new(rules, json_pack(
            "{s:o, s:o, s:b, s:o, s:o}", "name", json_str_or_null(er->name),
            "does", json_str_or_null(er->does), "dry", er->dry, "matches",
            json_tristate(er->matches), "parts", parts));
    }
    x = json_pack("{s:o, s:o, s:I, s:I, s:b, s:b, s:o, s:o, s:o, s:o, s:o, "
                  "s:I, s:o, s:I, s:o, s:b, s:o}",
                  "account", json_str_or_null(r->account),
                  "mailbox", json_str_or_null(r->mailbox),
                  "uid", (json_int_t)r->uid,
                  "uidvalidity", (json_int_t)r->uidvalidity,
                  "watched", r->watched, "found", r->found,
                  "from", json_str_or_null(r->from),
                  "subject", json_str_or_null(r->subject),
                  "date", json_str_or_null(r->date),
                  "message_id", json_str_or_null(r->message_id),
                  "flags", json_str_or_null(r->flags),
                  "size", (json_int_t)r->size,
                  "rules", rules,
                  "later_rules", (json_int_t)r->n_later,
                  "verdict_rule", json_str_or_null(r->verdict_rule),
                  "acts", r->acts,
                  "verdict", json_str_or_null(r->verdict));
    return encode(json_pack("{s:b, s:o}", "ok", 1, "explain", x));
}

/* --- replies (imapsweepctl's side) --------------------------------------- */

static char *
get_string(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL ? xstrdup(s) : NULL;
}

static long long
get_int(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static char **
get_strings(json_t *o, const char *key, size_t *n_r)
{
    json_t *a = json_object_get(o, key), *e;
    char **v = xcalloc(json_array_size(a) + 1, sizeof(*v));
    size_t i;

    json_array_foreach(a, i, e) {
        const char *s = json_string_value(e);

        v[i] = s != NULL ? xstrdup(s) : NULL;
    }
    *n_r = json_array_size(a);
    return v;
}

/* "2026-11-20T10:04:05Z" -> seconds since the epoch (0 if malformed) */
static long long
parse_iso(const char *s)
{
    struct tm tm;
    const char *end;

    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0')
        return 0;
    return (long long)timegm(&tm);
}

static double
get_number(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* One histogram of "sweep_seconds"; its buckets must match the bounds. */
static bool
parse_hist(json_t *o, size_t n_bounds, struct ctl_result_hist *h)
{
    json_t *b = json_object_get(o, "buckets"), *e;
    size_t i;

    if (!json_is_object(o) || json_array_size(b) != n_bounds)
        return false;
    h->count = get_int(o, "count");
    h->sum = get_number(o, "sum");
    h->le = xcalloc(n_bounds + 1, sizeof(*h->le));
    json_array_foreach(b, i, e)
        h->le[i] = (long long)json_integer_value(e);
    return true;
}

static void
parse_sweep_seconds(json_t *o, struct ctl_result *r)
{
    json_t *le = json_object_get(o, "le"), *e;
    size_t i, n = json_array_size(le);

    if (!json_is_object(o) || n == 0)
        return;
    r->bounds = xcalloc(n, sizeof(*r->bounds));
    json_array_foreach(le, i, e)
        r->bounds[i] = json_number_value(e);
    r->n_bounds = n;
    r->has_hist = parse_hist(json_object_get(o, "full"), n, &r->full) &&
                  parse_hist(json_object_get(o, "incremental"), n,
                             &r->incremental);
}

static void
parse_watcher(json_t *o, struct ctl_result_watcher *w)
{
    json_t *rules = json_object_get(o, "actions"), *kinds, *cnt;
    const char *rule, *kind;
    size_t n = 0;

    w->account = get_string(o, "account");
    w->mailbox = get_string(o, "mailbox");
    w->state = get_string(o, "state");
    w->state_s = get_int(o, "state_s");
    w->messages = get_int(o, "messages");
    json_object_foreach(rules, rule, kinds)
        n += json_object_size(kinds);
    w->counts = xcalloc(n ? n : 1, sizeof(*w->counts));
    json_object_foreach(rules, rule, kinds) {
        json_object_foreach(kinds, kind, cnt) {
            struct ctl_result_count *c = &w->counts[w->n_counts++];

            c->rule = xstrdup(rule);
            c->kind = xstrdup(kind);
            c->n = (long long)json_integer_value(cnt);
        }
    }
    w->last_sweep = get_string(o, "last_sweep");
    w->last_sweep_unix = w->last_sweep ? parse_iso(w->last_sweep) : 0;
    w->last_sweep_ms = get_int(o, "last_sweep_ms");
    w->reconnects = get_int(o, "reconnects");
    w->shared = json_is_true(json_object_get(o, "shared"));
    w->watched_by = get_string(o, "watched_by");
    w->last_event_s = json_is_integer(json_object_get(o, "last_event_s"))
                          ? get_int(o, "last_event_s")
                          : -1;
    w->last_error = get_string(o, "last_error");
    w->notes = get_strings(o, "notes", &w->n_notes);
}

static int
get_tristate(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_boolean(v) ? json_is_true(v) : -1;
}

static struct explain_report *
parse_explain(json_t *o)
{
    struct explain_report *r = xcalloc(1, sizeof(*r));
    json_t *rules = json_object_get(o, "rules"), *e;
    size_t i;

    r->account = get_string(o, "account");
    r->mailbox = get_string(o, "mailbox");
    r->uid = (uint32_t)get_int(o, "uid");
    r->uidvalidity = (uint32_t)get_int(o, "uidvalidity");
    r->watched = json_is_true(json_object_get(o, "watched"));
    r->found = json_is_true(json_object_get(o, "found"));
    r->from = get_string(o, "from");
    r->subject = get_string(o, "subject");
    r->date = get_string(o, "date");
    r->message_id = get_string(o, "message_id");
    r->flags = get_string(o, "flags");
    r->size = (uint64_t)get_int(o, "size");
    r->n_later = (size_t)get_int(o, "later_rules");
    r->verdict_rule = get_string(o, "verdict_rule");
    r->acts = json_is_true(json_object_get(o, "acts"));
    r->verdict = get_string(o, "verdict");
    r->rules = xcalloc(json_array_size(rules) + 1, sizeof(*r->rules));
    json_array_foreach(rules, i, e) {
        struct explain_rule *er = &r->rules[r->n_rules++];
        json_t *parts = json_object_get(e, "parts"), *p;
        size_t j;

        er->name = get_string(e, "name");
        er->does = get_string(e, "does");
        er->dry = json_is_true(json_object_get(e, "dry"));
        er->matches = get_tristate(e, "matches");
        er->parts = xcalloc(json_array_size(parts) + 1, sizeof(*er->parts));
        json_array_foreach(parts, j, p) {
            struct explain_part *ep = &er->parts[er->n_parts++];

            ep->text = get_string(p, "text");
            ep->server = json_is_true(json_object_get(p, "server"));
            ep->holds = get_tristate(p, "holds");
        }
    }
    return r;
}

bool
ctl_watcher_healthy(const struct ctl_result_watcher *w)
{
    if (w->last_error != NULL || w->state == NULL)
        return false;
    return strcmp(w->state, "backoff") != 0 && strcmp(w->state, "error") != 0;
}

int
ctl_result_parse(const char *line, size_t len, struct ctl_result **result_r,
                 char **err_r)
{
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr), *a, *e;
    struct ctl_result *r;
    size_t i;

    if (!json_is_object(o)) {
        *err_r = xstrdup(o == NULL ? jerr.text : "not a JSON object");
        json_decref(o);
        return -1;
    }
    r = xcalloc(1, sizeof(*r));
    r->ok = json_is_true(json_object_get(o, "ok"));
    r->error = get_string(o, "error");
    r->errors = get_strings(o, "errors", &r->n_errors);
    r->version = get_string(o, "version");
    r->pid = get_int(o, "pid");
    r->uptime_s = get_int(o, "uptime_s");
    r->generation = get_int(o, "generation");
    r->dry_run = json_is_true(json_object_get(o, "dry_run"));
    r->config = get_string(o, "config");
    parse_sweep_seconds(json_object_get(o, "sweep_seconds"), r);
    a = json_object_get(o, "watchers");
    r->watchers = xcalloc(json_array_size(a) + 1, sizeof(*r->watchers));
    json_array_foreach(a, i, e)
        parse_watcher(e, &r->watchers[i]);
    r->n_watchers = json_array_size(a);
    a = json_object_get(o, "swept");
    r->swept = xcalloc(json_array_size(a) + 1, sizeof(*r->swept));
    json_array_foreach(a, i, e) {
        r->swept[i].account = get_string(e, "account");
        r->swept[i].mailbox = get_string(e, "mailbox");
    }
    r->n_swept = json_array_size(a);
    if (json_is_object(json_object_get(o, "explain")))
        r->explain = parse_explain(json_object_get(o, "explain"));
    json_decref(o);
    *result_r = r;
    return 0;
}

static void
free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
ctl_result_free(struct ctl_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_watchers; i++) {
        struct ctl_result_watcher *w = &r->watchers[i];

        free(w->account);
        free(w->mailbox);
        free(w->state);
        for (size_t k = 0; k < w->n_counts; k++) {
            free(w->counts[k].rule);
            free(w->counts[k].kind);
        }
        free(w->counts);
        free(w->last_sweep);
        free(w->last_error);
        free(w->watched_by);
        free_strings(w->notes, w->n_notes);
    }
    free(r->watchers);
    for (size_t i = 0; i < r->n_swept; i++) {
        free(r->swept[i].account);
        free(r->swept[i].mailbox);
    }
    free(r->swept);
    if (r->explain != NULL) {
        explain_report_clear(r->explain);
        free(r->explain);
    }
    free(r->error);
    free_strings(r->errors, r->n_errors);
    free(r->version);
    free(r->config);
    free(r->bounds);
    free(r->full.le);
    free(r->incremental.le);
    free(r);
}
