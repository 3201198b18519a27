/* SPDX-License-Identifier: MIT */
/* config_check: what --check-config knows beyond the YAML: the secret
 * files and credentials the accounts name, as the service will meet them;
 * and each rule in words, with where it applies. Free of libyaml. */
#include "config_diag_private.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

/* The user the systemd unit runs as (User=, DynamicUser=yes). */
#define SERVICE_USER "imapsweep"
/* Rule summaries name at most this many mailboxes. */
#define SUMMARY_MAX_MAILBOXES 10

struct check {
    const struct config *c;
    struct config_diag *diag;
    size_t errors;
};

static void check_msg(struct check *k, bool warning,
                      const struct config_secret *at, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

static void
check_msg(struct check *k, bool warning, const struct config_secret *at,
          const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    config_diag_add(k->diag, warning, k->c->path, at->line, at->col, msg);
    free(msg);
    if (!warning)
        k->errors++;
}

/* ProtectHome=yes makes these empty for the service. */
static bool
hidden_by_unit(const char *path)
{
    static const char *const dirs[] = {"/home", "/root", "/run/user"};

    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        size_t n = strlen(dirs[i]);

        if (strncmp(path, dirs[i], n) == 0 &&
            (path[n] == '/' || path[n] == '\0'))
            return true;
    }
    return false;
}

/* Could the service's user read a file of this owner and mode? With
 * DynamicUser and no static user "imapsweep", only "others" applies. */
static bool
service_can_read(const struct stat *st)
{
    struct passwd *pw = getpwnam(SERVICE_USER);
    struct group *gr = getgrnam(SERVICE_USER);

    if (st->st_mode & S_IROTH)
        return true;
    if (pw != NULL && st->st_uid == pw->pw_uid)
        return (st->st_mode & S_IRUSR) != 0;
    if ((st->st_mode & S_IRGRP) == 0)
        return false;
    if (gr != NULL && st->st_gid == gr->gr_gid)
        return true;
    if (pw != NULL) {
        gid_t groups[64];
        int n = (int)ARRAY_SIZE(groups);

        if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) >= 0) {
            for (int i = 0; i < n; i++) {
                if (groups[i] == st->st_gid)
                    return true;
            }
        }
    }
    return false;
}

static void
check_password_file(struct check *k, const struct config_account *a)
{
    const struct config_secret *s = &a->secret;
    const char *path = s->value;
    struct stat st;
    int fd;

    if (path[0] != '/')
        check_msg(k, true, s, "password_file %s is a relative path: the "
                  "service resolves it from / (write the full path)", path);
    /* the system unit's sandbox (run as root, or as the service in
     * ExecStartPre); a user's own daemon sees its home */
    if (geteuid() == 0 && hidden_by_unit(path))
        check_msg(k, true, s, "password_file %s is under /home, /root or "
                  "/run/user, which the systemd unit hides (ProtectHome=yes): "
                  "the service will not find it (move it to "
                  "/etc/imapsweep, or use password_credential)", path);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        check_msg(k, false, s, "password_file %s: %s", path,
                  strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0) {
        check_msg(k, false, s, "password_file %s: %s", path,
                  strerror(errno));
        close(fd);
        return;
    }
    close(fd);
    if (S_ISDIR(st.st_mode)) {
        check_msg(k, false, s, "password_file %s is a directory", path);
        return;
    }
    if (S_ISREG(st.st_mode) && st.st_size == 0) {
        check_msg(k, false, s, "password_file %s is empty", path);
        return;
    }
    /* as ssh does for keys: a password others may read is no secret
     * (checked again each time the daemon reads the file) */
    if (S_ISREG(st.st_mode) && (st.st_mode & (S_IRGRP | S_IROTH)))
        check_msg(k, true, s, "password_file %s is readable by group or "
                  "others (mode %04o): make it mode 600, owned by the user "
                  "imapsweepd runs as, or use password_credential", path,
                  (unsigned)(st.st_mode & 07777));
    else if (S_ISREG(st.st_mode) && geteuid() == 0 && !service_can_read(&st))
        check_msg(k, true, s, "password_file %s is readable by root, but "
                  "not by the service's user " SERVICE_USER " (mode %04o, "
                  "owner uid %u): create that user and give the file to it "
                  "with mode 0600, or use password_credential", path,
                  (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
}

static void
check_credential(struct check *k, const struct config_account *a)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    char *path;

    /* outside the unit there are no credentials to look at */
    if (dir == NULL || *dir == '\0')
        return;
    path = xasprintf("%s/%s", dir, a->secret.value);
    if (access(path, R_OK) < 0)
        check_msg(k, false, &a->secret, "password_credential %s: %s (%s); "
                  "the unit needs LoadCredential=%s:FILE or "
                  "LoadCredentialEncrypted=%s:FILE", a->secret.value, path,
                  strerror(errno), a->secret.value, a->secret.value);
    free(path);
}

size_t
config_check_environment(const struct config *c, struct config_diag *diag)
{
    struct check k = {.c = c, .diag = diag};
    size_t first_error = diag->n_errors, first_warning = diag->n_warnings;

    for (size_t i = 0; i < c->n_accounts; i++) {
        const struct config_account *a = &c->accounts[i];

        if (a->secret.value == NULL)
            continue;
        if (a->secret.kind == CONFIG_SECRET_FILE)
            check_password_file(&k, a);
        else if (a->secret.kind == CONFIG_SECRET_CREDENTIAL)
            check_credential(&k, a);
    }
    config_diag_sort(diag->errors, first_error, diag->n_errors);
    config_diag_sort(diag->warnings, first_warning, diag->n_warnings);
    return k.errors;
}

/* --- rules in words ------------------------------------------------------ */

char *
config_rule_summary(const struct config *c, size_t index)
{
    const struct rule *r = c->rules[index];
    char *what = rule_describe(r);
    size_t shown = 0, more = 0;
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    buf_printf(&b, "rule %s: %s%s in ", r->name, what,
               r->dry_run == 1 ? " (dry run: only logged)"
               : r->dry_run == -1 && c->daemon.dry_run
                   ? " (dry run, as daemon.dry_run says: only logged)"
                   : "");
    free(what);
    for (size_t i = 0; i < c->n_accounts; i++) {
        const struct config_account *a = &c->accounts[i];
        bool uses = false;

        for (size_t k = 0; k < a->n_rules && !uses; k++)
            uses = a->rules[k] == index;
        for (size_t m = 0; uses && m < a->n_mailboxes; m++) {
            if (!rule_applies_to(r, a->mailboxes[m]))
                continue;
            if (shown == SUMMARY_MAX_MAILBOXES) {
                more++;
                continue;
            }
            buf_printf(&b, "%s%s/%s", shown > 0 ? ", " : "", a->name,
                       a->mailboxes[m]);
            shown++;
        }
    }
    if (shown == 0)
        buf_append_str(&b, "no watched mailbox (it never acts)");
    else if (more > 0)
        buf_printf(&b, " and %zu more", more);
    return buf_steal(&b);
}
