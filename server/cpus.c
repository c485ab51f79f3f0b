/*
 * cpus.c: the CPUs this process may use: its affinity mask, bounded by the
 * CPU bandwidth quota of its cgroups.
 *
 * The cgroup a process is in is named by /proc/self/cgroup relative to the
 * root of its hierarchy; where that hierarchy is mounted, and which part of
 * it the mount shows (a container sees its own cgroup as the root), is in
 * /proc/self/mountinfo.  A quota set on an ancestor applies too, so every
 * directory from the process's cgroup up to the mount point is read.
 */
#include "cpus.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whether the comma-separated list has the token. */
static int
has_token(const char *list, const char *token)
{
    size_t n = strlen(token);

    for (const char *p = list;; p++) {
        if (strncmp(p, token, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return 1;
        if ((p = strchr(p, ',')) == NULL)
            return 0;
    }
}

/* Where the hierarchy (v2: cgroup2; v1: the cgroup with the cpu
 * controller) is mounted and which of its directories the mount shows.
 * 0 when found. */
static int
find_mount(const char *mountinfo, int v2, char *root, char *point, size_t len)
{
    FILE *fp = fopen(mountinfo, "r");
    char line[4096];
    int found = -1;

    if (fp == NULL)
        return -1;
    while (found != 0 && fgets(line, sizeof(line), fp) != NULL) {
        char r[PATH_MAX], mp[PATH_MAX], fstype[64], super[1024];
        const char *dash = strstr(line, " - ");

        if (dash == NULL || sscanf(line, "%*s %*s %*s %4095s %4095s", r, mp) != 2 ||
            sscanf(dash + 3, "%63s %*s %1023s", fstype, super) != 2)
            continue;
        if (v2 ? strcmp(fstype, "cgroup2") != 0
               : strcmp(fstype, "cgroup") != 0 || !has_token(super, "cpu"))
            continue;
        if (strlen(r) >= len || strlen(mp) >= len)
            continue;
        strcpy(root, r);
        strcpy(point, mp);
        found = 0;
    }
    fclose(fp);
    return found;
}

/* The quota set in one cgroup directory, in whole CPUs rounded up; 0 if
 * none. */
static int
dir_quota(const char *dir, int v2)
{
    char path[PATH_MAX + 32], word[32];
    long long quota = -1, period = 0;
    FILE *fp;

    if (v2) {
        snprintf(path, sizeof(path), "%s/cpu.max", dir);
        if ((fp = fopen(path, "r")) == NULL)
            return 0;
        if (fscanf(fp, "%31s %lld", word, &period) == 2 && strcmp(word, "max") != 0)
            quota = atoll(word);
        fclose(fp);
    } else {
        snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
        if ((fp = fopen(path, "r")) == NULL)
            return 0;
        if (fscanf(fp, "%lld", &quota) != 1)
            quota = -1;
        fclose(fp);
        snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
        if ((fp = fopen(path, "r")) == NULL)
            return 0;
        if (fscanf(fp, "%lld", &period) != 1)
            period = 0;
        fclose(fp);
    }
    if (quota <= 0 || period <= 0)
        return 0;
    return (int)((quota + period - 1) / period);
}

/* The smallest quota from the cgroup at path (relative to the hierarchy's
 * root) up to the mount point; 0 if none. */
static int
hierarchy_quota(const char *mountinfo, int v2, const char *path)
{
    char root[PATH_MAX], point[PATH_MAX], dir[PATH_MAX];
    size_t rlen, plen;
    int best = 0;

    if (find_mount(mountinfo, v2, root, point, sizeof(root)) != 0)
        return 0;
    rlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (strncmp(path, root, rlen) != 0 || (path[rlen] != '/' && path[rlen] != '\0'))
        return 0;  /* the mount does not show our cgroup */
    if (snprintf(dir, sizeof(dir), "%s%s", point, path + rlen) >= (int)sizeof(dir))
        return 0;
    plen = strlen(point);
    for (;;) {
        size_t n = strlen(dir);
        int q;

        while (n > plen && dir[n - 1] == '/')
            dir[--n] = '\0';
        q = dir_quota(dir, v2);
        if (q > 0 && (best == 0 || q < best))
            best = q;
        if (n <= plen)
            break;
        *strrchr(dir, '/') = '\0';
        if (strlen(dir) < plen)
            break;
    }
    return best;
}

int
cpus_quota(const char *proc_cgroup, const char *mountinfo)
{
    FILE *fp = fopen(proc_cgroup, "r");
    char line[4096];
    int best = 0;

    if (fp == NULL)
        return 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *controllers = strchr(line, ':'), *path;
        int v2, q;

        if (controllers == NULL || (path = strchr(++controllers, ':')) == NULL)
            continue;
        *path++ = '\0';
        path[strcspn(path, "\n")] = '\0';
        v2 = *controllers == '\0' && strncmp(line, "0:", 2) == 0;
        if (!v2 && !has_token(controllers, "cpu"))
            continue;
        q = hierarchy_quota(mountinfo, v2, path);
        if (q > 0 && (best == 0 || q < best))
            best = q;
    }
    fclose(fp);
    return best;
}

int
cpus_available(int max)
{
    cpu_set_t *set = CPU_ALLOC(4096);
    size_t size = CPU_ALLOC_SIZE(4096);
    int n = 0, quota;

    if (set != NULL && sched_getaffinity(0, size, set) == 0)
        n = CPU_COUNT_S(size, set);
    CPU_FREE(set);
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    quota = cpus_quota("/proc/self/cgroup", "/proc/self/mountinfo");
    if (quota > 0 && quota < n)
        n = quota;
    if (n > max)
        n = max;
    return n < 1 ? 1 : n;
}
