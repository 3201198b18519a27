/* SPDX-License-Identifier: MIT */
/* regex: what a subject_regex costs per message, PCRE2 as the daemon runs
 * it (rule_regex_match: UTF-8, Unicode properties, caseless, no JIT, with
 * its match limits) against glibc's POSIX ERE (regexec, REG_ICASE, the
 * engine the daemon used before), on the same decoded subjects.
 *
 *   regex N
 *
 * Prints one JSON object per pattern: {"name", "pcre2", "ere", "n",
 * "matches_pcre2", "matches_ere", "ns_pcre2", "ns_ere"} with the best of
 * five passes over N subjects. Built by bench/run.py against
 * build/libimapsweep.a. */
#include <locale.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rule.h"
#include "util.h"

struct pair {
    const char *name;
    const char *pcre2;          /* as a user writes it now */
    const char *ere;            /* the same in POSIX ERE */
};

static const struct pair pairs[] = {
    {"anchored literal", "^Cron <root@", "^Cron <root@"},
    {"alternation at the end", "backup .* (ok|done|finished)$",
     "backup .* (ok|done|finished)$"},
    {"digits and a word boundary", "\\bdisk usage \\d+%",
     "(^|[^[:alnum:]_])disk usage [0-9]+%"},
    {"non-ASCII, caseless", "^über(sicht|sicherung)", "^über(sicht|sicherung)"},
    {"no match, scans the whole subject", "zzz[0-9]+qqq", "zzz[0-9]+qqq"},
};

static const char *const templates[] = {
    "Cron <root@host%d> /usr/local/bin/backup.sh",
    "Nightly backup of host%d finished",
    "Re: quarterly report %d",
    "Disk usage %d%% on /var",
    "ÜBERSICHT der Woche %d",
    "Invoice 2024-%04d for your order",
    "[alert] disk usage 9%d% on host web%d",
    "Meeting notes %d: plans for the next release and who does what",
};

static double
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int
main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    char **subjects;

    /* glibc's REG_ICASE needs a UTF-8 locale to fold "Ü" */
    if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
        setlocale(LC_CTYPE, "");
    subjects = xcalloc(n, sizeof(*subjects));
    for (size_t i = 0; i < n; i++)
        subjects[i] = xasprintf(templates[i % ARRAY_SIZE(templates)],
                                (int)i, (int)(i % 7));
    for (size_t p = 0; p < ARRAY_SIZE(pairs); p++) {
        struct rule_node *node = rule_node_new(RULE_SUBJECT_REGEX, 1, 1);
        double best_pcre = 1e300, best_ere = 1e300;
        size_t m_pcre = 0, m_ere = 0;
        char *err = NULL;
        regex_t re;

        if (rule_node_set_regex(node, pairs[p].pcre2, &err) < 0 ||
            regcomp(&re, pairs[p].ere, REG_EXTENDED | REG_ICASE | REG_NOSUB)
                != 0) {
            fprintf(stderr, "regex: cannot compile %s: %s\n", pairs[p].name,
                    err ? err : "(ERE)");
            return 1;
        }
        for (int pass = 0; pass < 5; pass++) {
            double t0 = now_ns(), t1;
            size_t m = 0;

            for (size_t i = 0; i < n; i++)
                m += rule_regex_match(node->re, subjects[i],
                                      strlen(subjects[i])) == 1;
            t1 = now_ns();
            m_pcre = m;
            if (t1 - t0 < best_pcre)
                best_pcre = t1 - t0;
            m = 0;
            t0 = now_ns();
            for (size_t i = 0; i < n; i++)
                m += regexec(&re, subjects[i], 0, NULL, 0) == 0;
            t1 = now_ns();
            m_ere = m;
            if (t1 - t0 < best_ere)
                best_ere = t1 - t0;
        }
        printf("{\"name\": \"%s\", \"pcre2\": \"", pairs[p].name);
        for (const char *c = pairs[p].pcre2; *c; c++)
            printf(*c == '\\' || *c == '"' ? "\\%c" : "%c", *c);
        printf("\", \"n\": %zu, \"matches_pcre2\": %zu, \"matches_ere\": "
               "%zu, \"ns_pcre2\": %.1f, \"ns_ere\": %.1f}\n",
               n, m_pcre, m_ere, best_pcre / (double)n,
               best_ere / (double)n);
        regfree(&re);
        rule_node_free(node);
    }
    /* the pathological case: how long until PCRE2 gives up */
    {
        struct rule_node *node = rule_node_new(RULE_SUBJECT_REGEX, 1, 1);
        char bomb[64], *err = NULL;
        double t0, t1;
        int r;

        memset(bomb, 'a', 40);
        memcpy(bomb + 40, "!", 2);
        rule_node_set_regex(node, "^(a+)+$", &err);
        t0 = now_ns();
        r = rule_regex_match(node->re, bomb, strlen(bomb));
        t1 = now_ns();
        printf("{\"name\": \"catastrophic (a+)+$ on 40 a's\", \"result\": %d, "
               "\"ms_pcre2\": %.2f}\n", r, (t1 - t0) / 1e6);
        rule_node_free(node);
    }
    for (size_t i = 0; i < n; i++)
        free(subjects[i]);
    free(subjects);
    return 0;
}
