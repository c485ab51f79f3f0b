/*
 * cpus.h: how many CPUs rosimd may actually use, for [model] threads = auto.
 *
 * The machine's CPU count is the wrong default in a container or a systemd
 * slice: the process may be pinned to fewer (taskset, docker --cpuset-cpus,
 * cpuset cgroups) or given a bandwidth quota (docker --cpus, systemd
 * CPUQuota=).  OpenBLAS threads beyond that only contend with each other.
 */
#ifndef ROSIM_CPUS_H
#define ROSIM_CPUS_H

/* CPUs in the affinity mask, bounded by the cgroup CPU quota (rounded up);
 * at least 1, at most max. */
int cpus_available(int max);

/* The CPU quota of the process's cgroups, rounded up to whole CPUs, read
 * through the given /proc/self/cgroup and /proc/self/mountinfo (the
 * smallest of the process's cgroup and its ancestors: cgroup v2 cpu.max,
 * cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us).  0 when there is none
 * or it cannot be read. */
int cpus_quota(const char *proc_cgroup, const char *mountinfo);

#endif
