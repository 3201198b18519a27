/* SPDX-License-Identifier: MIT */
/* measure: run a command and report what it cost, for bench/run.py.
 *
 *   measure OUTFILE COMMAND [ARG...]
 *
 * Forks, execs COMMAND, waits for it with wait4 and writes one line to
 * OUTFILE: "wall_s user_s sys_s maxrss_kib exit_status". Exists so that
 * the peak RSS is the command's own: a child forked from the Python
 * harness (or vforked: exec accounts the old address space too) would
 * report Python's resident size as its peak. This program is tiny, so
 * its image does not raise the figure. The child dies with this process
 * (PR_SET_PDEATHSIG), which dies with the harness.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
    struct timespec t0, t1;
    struct rusage ru;
    int status;
    pid_t pid;
    FILE *out;

    if (argc < 3) {
        fputs("usage: measure OUTFILE COMMAND [ARG...]\n", stderr);
        return 64;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("wait4");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out = fopen(argv[1], "w");
    if (out == NULL) {
        perror(argv[1]);
        return 1;
    }
    fprintf(out, "%.6f %.6f %.6f %ld %d\n",
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
            ru.ru_maxrss,
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    fclose(out);
    return 0;
}
