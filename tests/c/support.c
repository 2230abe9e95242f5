/* The support matrix through the C ABI: every query, the three validators, and the errors. */
#include <stdio.h>
#include <string.h>

#include "blockdelta.h"
#include "check.h"

#define OK(call) CHECK((call) == BLOCKDELTA_RESULT_OK)

#define MB ((uint64_t)1 << 20)
#define GB ((uint64_t)1 << 30)
#define TB ((uint64_t)1 << 40)

static void kernels(void) {
    blockdelta_support_kernel k;
    OK(blockdelta_support_kernel_check("ubuntu", "16.04", "4.4.0-143-generic", "9.24", &k));
    CHECK(k.supported && k.release_listed);
    CHECK(strcmp(k.range_first, "4.4.0-21-generic") == 0 && strcmp(k.range_last, "4.4.0-143-generic") == 0);

    OK(blockdelta_support_kernel_check("ubuntu", "16.04", "4.4.0-143-generic", "9.23", &k));
    CHECK(!k.supported && k.nearest_major == 9 && k.nearest_minor == 24);

    OK(blockdelta_support_kernel_check("sles", "12", "4.12.14-95.6-default", "9.24", &k));
    CHECK(k.supported && k.service_pack == 4 && !k.ltss);

    OK(blockdelta_support_kernel_check("debian", "8", "4.9.0-0.bpo.9-amd64", "9.24", &k));
    CHECK(!k.supported && k.nearest_major == 0 && k.range_first == NULL);

    /* Errors: a string that is not a kernel version, and the message that says so. */
    CHECK(blockdelta_support_kernel_check("ubuntu", "16.04", "hello", "9.24", &k) ==
          BLOCKDELTA_RESULT_SUPPORT_INVALID_KERNEL_VERSION);
    char msg[256];
    size_t len = 0;
    OK(blockdelta_last_error(msg, sizeof msg, &len));
    CHECK(strstr(msg, "\"hello\" is not a kernel version") != NULL);
    CHECK(blockdelta_support_kernel_check("ubuntu", "16.04", "4.4.0-21-generic", "9.19", &k) ==
          BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_AGENT_VERSION);
    CHECK(blockdelta_support_kernel_check("fedora", "29", "4.4.0-21-generic", "9.24", &k) ==
          BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_DISTRIBUTION);
    CHECK(blockdelta_support_kernel_check("rhel", "7.6", "3.10.0-957-el7", "9.24", &k) ==
          BLOCKDELTA_RESULT_SUPPORT_NO_KERNEL_TABLE);
    CHECK(blockdelta_support_kernel_check(NULL, "16.04", "4.4.0-21-generic", "9.24", &k) ==
          BLOCKDELTA_RESULT_NULL_PARAMETER);
    CHECK(blockdelta_support_kernel_check("ubuntu", "16.04", "4.4.0-21-generic", "9.24", NULL) ==
          BLOCKDELTA_RESULT_NULL_PARAMETER);
    CHECK(strcmp(blockdelta_result_name(BLOCKDELTA_RESULT_SUPPORT_INVALID_KERNEL_VERSION),
                 "BLOCKDELTA_RESULT_SUPPORT_INVALID_KERNEL_VERSION") == 0);
}

static void operating_systems(void) {
    blockdelta_support_os os;
    OK(blockdelta_support_os_check("Windows Server 2019", "", 64, "9.22", &os));
    CHECK(os.verdict == BLOCKDELTA_OS_SUPPORTED);
    OK(blockdelta_support_os_check("Windows 10", "", 64, "9.23", &os));
    CHECK(os.verdict == BLOCKDELTA_OS_NOT_SUPPORTED && os.rejection == BLOCKDELTA_REJECT_NEEDS_AGENT);
    CHECK(os.required_major == 9 && os.required_minor == 24);
    OK(blockdelta_support_os_check("Windows Server 2008", "SP2", 32, "9.24", &os));
    CHECK(os.verdict == BLOCKDELTA_OS_MIGRATION_ONLY);
    OK(blockdelta_support_os_check("CentOS", "7.6", 32, "9.24", &os));
    CHECK(os.rejection == BLOCKDELTA_REJECT_ARCHITECTURE);
    OK(blockdelta_support_os_check("RHEL", "5.11", 64, "9.24", &os));
    CHECK(os.verdict == BLOCKDELTA_OS_SUPPORTED && os.notes != 0);
    int lis = 0;
    for (uint32_t bit = 1; bit != 0; bit <<= 1) {
        if (os.notes & bit) {
            const char *text = blockdelta_support_os_note_text(bit);
            CHECK(text != NULL);
            if (text && strstr(text, "Linux Integration Services")) lis = 1;
        }
    }
    CHECK(lis);
    CHECK(blockdelta_support_os_note_text(3) == NULL);
    CHECK(blockdelta_support_os_check("OS/2", "", 64, "9.24", &os) == BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_OPERATING_SYSTEM);
    CHECK(blockdelta_support_os_check("CentOS", "7.6", 16, "9.24", &os) == BLOCKDELTA_RESULT_INVALID_ARGUMENT);

    /* Upgrading a protected machine. */
    blockdelta_support_os_upgrade up;
    OK(blockdelta_support_os_upgrade_check("CentOS", "7.4", "7.6", 64, "9.24", &up));
    CHECK(up.verdict == BLOCKDELTA_UPGRADE_IN_PLACE);
    OK(blockdelta_support_os_upgrade_check("Ubuntu", "14.04", "16.04", 64, "9.24", &up));
    CHECK(up.verdict == BLOCKDELTA_UPGRADE_REPROTECT);
    CHECK(strstr(blockdelta_support_os_note_text(up.note), "major versions") != NULL);
    OK(blockdelta_support_os_upgrade_check("CentOS", "7.6", "7.9", 64, "9.24", &up));
    CHECK(up.verdict == BLOCKDELTA_UPGRADE_TARGET_NOT_SUPPORTED && up.rejection == BLOCKDELTA_REJECT_NOT_LISTED);
    CHECK(blockdelta_support_os_upgrade_check("CentOS", "7.6", "7.4", 64, "9.24", &up) ==
          BLOCKDELTA_RESULT_SUPPORT_INVALID_DESCRIPTION);

    bool ok = false;
    OK(blockdelta_support_vmware_host_check("6.7", &ok));
    CHECK(ok);
    OK(blockdelta_support_vmware_host_check("7.0", &ok));
    CHECK(!ok);
}

static void filesystems_and_features(void) {
    blockdelta_support_filesystem fs;
    OK(blockdelta_support_filesystem_check("btrfs", 0, "9.21", &fs));
    CHECK(!fs.supported && fs.rejection == BLOCKDELTA_REJECT_NEEDS_AGENT && fs.required_minor == 22);
    OK(blockdelta_support_filesystem_check("btrfs", BLOCKDELTA_FS_BTRFS_RAID, "9.24", &fs));
    CHECK(!fs.supported && fs.rejection == BLOCKDELTA_REJECT_TRAITS && fs.traits == BLOCKDELTA_FS_BTRFS_RAID);
    OK(blockdelta_support_filesystem_check("xfs", BLOCKDELTA_FS_XFS_V5, "9.20", &fs));
    CHECK(fs.supported);
    OK(blockdelta_support_filesystem_check("zfs", 0, "9.24", &fs));
    CHECK(fs.rejection == BLOCKDELTA_REJECT_NOT_LISTED);

    uint32_t s = 99;
    const char *note = NULL;
    OK(blockdelta_support_feature("host_nic_teaming", BLOCKDELTA_MACHINE_PHYSICAL, &s, &note));
    CHECK(s == BLOCKDELTA_FEATURE_NO && note != NULL);
    OK(blockdelta_support_feature("guest_uefi_boot", BLOCKDELTA_MACHINE_VMWARE_VM, &s, &note));
    CHECK(s == BLOCKDELTA_FEATURE_CONDITIONAL && strstr(note, "9.13") != NULL);
    OK(blockdelta_support_feature("host_vsan", BLOCKDELTA_MACHINE_PHYSICAL, &s, NULL));
    CHECK(s == BLOCKDELTA_FEATURE_NOT_APPLICABLE);
    CHECK(blockdelta_support_feature("teleport", 0, &s, NULL) == BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_FEATURE);

    size_t n = blockdelta_support_errata_count();
    CHECK(n >= 10);
    const char *id = NULL, *source = NULL, *resolution = NULL;
    OK(blockdelta_support_erratum(0, &id, &source, &resolution));
    CHECK(strcmp(id, "E1") == 0 && strstr(source, "Ubuntu 16.04") != NULL && resolution != NULL);
    CHECK(blockdelta_support_erratum(n, &id, NULL, NULL) == BLOCKDELTA_RESULT_INVALID_ARGUMENT);
}

static void churn(void) {
    blockdelta_churn_limit l;
    OK(blockdelta_support_disk_churn_limit(30, 64 * 1024, &l));
    CHECK(l.bytes_per_second == 20 * MB && l.bytes_per_day == 1684 * GB && l.io_kib == 16);
    OK(blockdelta_support_disk_churn_limit(0, 8 * 1024, &l));
    CHECK(l.bytes_per_second == 2 * MB && l.bytes_per_day == 168 * GB);
    CHECK(blockdelta_support_disk_churn_limit(60, 8192, &l) == BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_STORAGE_TARGET);
    blockdelta_churn_limits v;
    OK(blockdelta_support_churn_limits(&v));
    CHECK(v.vm_average_bytes_per_second == 25 * MB && v.vm_peak_bytes_per_second == 54 * MB);
    CHECK(v.process_server_bytes_per_day == 2 * TB);
}

static int has_rule(const blockdelta_report *r, uint32_t rule) {
    for (size_t i = 0; i < blockdelta_report_count(r); i++) {
        blockdelta_failure f;
        if (blockdelta_report_failure(r, i, &f) == BLOCKDELTA_RESULT_OK && f.rule == rule) return 1;
    }
    return 0;
}

static void vm_validator(void) {
    blockdelta_vm *vm = NULL;
    OK(blockdelta_vm_new("web-01", &vm));
    OK(blockdelta_vm_set_os(vm, "Windows Server 2016", ""));
    OK(blockdelta_vm_add_disk(vm, "disk0", 127 * GB, BLOCKDELTA_VM_DISK_OS, 2, NULL));
    OK(blockdelta_vm_add_disk(vm, "disk1", 512 * GB, 0, 1, NULL));
    blockdelta_report *r = NULL;
    OK(blockdelta_vm_validate(vm, &r));
    CHECK(blockdelta_report_count(r) == 0);
    blockdelta_report_free(r);

    /* Several failures at once: each with its rule, value and limit. */
    size_t big = 0;
    OK(blockdelta_vm_add_disk(vm, "disk2", 5000 * GB, BLOCKDELTA_VM_DISK_FC, 1, &big));
    CHECK(big == 2);
    OK(blockdelta_vm_set_boot(vm, 0, true));
    OK(blockdelta_vm_set_arch(vm, 32));
    OK(blockdelta_vm_validate(vm, &r));
    CHECK(blockdelta_report_count(r) == 4);
    CHECK(has_rule(r, 6) && has_rule(r, 9) && has_rule(r, 10) && has_rule(r, 2));
    for (size_t i = 0; i < blockdelta_report_count(r); i++) {
        blockdelta_failure f;
        OK(blockdelta_report_failure(r, i, &f));
        if (f.rule == 6) { /* data disk size */
            CHECK(f.found == 5000 * GB && f.limit == 4095 * GB && f.unit == 1);
            char subject[16];
            OK(blockdelta_report_subject(r, i, subject, sizeof subject, NULL));
            CHECK(strcmp(subject, "disk2") == 0);
        }
        char small[8];
        size_t len = 0;
        OK(blockdelta_report_message(r, i, small, sizeof small, &len));
        CHECK(len > sizeof small && strlen(small) == sizeof small - 1); /* truncated, NUL-terminated */
    }
    blockdelta_failure f;
    CHECK(blockdelta_report_failure(r, 99, &f) == BLOCKDELTA_RESULT_INVALID_ARGUMENT);
    blockdelta_report_free(r);

    CHECK(blockdelta_vm_set_arch(vm, 16) == BLOCKDELTA_RESULT_INVALID_ARGUMENT);
    char msg[128];
    OK(blockdelta_vm_last_error(vm, msg, sizeof msg, NULL));
    CHECK(strstr(msg, "32 or 64") != NULL);
    blockdelta_vm_free(vm);

    /* A Linux machine before 9.20 with /boot on LVM. */
    OK(blockdelta_vm_new("db01", &vm));
    OK(blockdelta_vm_set_agent(vm, "9.19"));
    OK(blockdelta_vm_set_os(vm, "CentOS", "7.6"));
    size_t sda = 0;
    OK(blockdelta_vm_add_disk(vm, "sda", 64 * GB, BLOCKDELTA_VM_DISK_OS, 2, &sda));
    OK(blockdelta_vm_set_linux(vm, 4 * GB, GB, 0));
    OK(blockdelta_vm_add_volume(vm, "/", "/dev/sda2", "xfs", 0, false, &sda, 1));
    OK(blockdelta_vm_add_volume(vm, "/boot", "/dev/mapper/vg-boot", "ext4", 0, true, &sda, 1));
    OK(blockdelta_vm_validate(vm, &r));
    CHECK(blockdelta_report_count(r) == 1 && has_rule(r, 21));
    blockdelta_report_free(r);
    size_t nowhere = 7;
    OK(blockdelta_vm_add_volume(vm, "/data", "/dev/sdb1", "ext4", 0, false, &nowhere, 1));
    CHECK(blockdelta_vm_validate(vm, &r) == BLOCKDELTA_RESULT_SUPPORT_INVALID_DESCRIPTION);
    blockdelta_vm_free(vm);

    /* UEFI boot (migration of Windows Server 2012 or later): only NTFS on the OS disk. */
    OK(blockdelta_vm_new("app-01", &vm));
    OK(blockdelta_vm_set_os(vm, "Windows Server 2019", ""));
    OK(blockdelta_vm_set_purpose(vm, 1));
    OK(blockdelta_vm_set_boot(vm, 1, false));
    size_t os = 9, data = 9;
    OK(blockdelta_vm_add_disk(vm, "disk0", 127 * GB, BLOCKDELTA_VM_DISK_OS, 3, &os));
    OK(blockdelta_vm_add_disk(vm, "disk1", 512 * GB, 0, 1, &data));
    OK(blockdelta_vm_add_windows_volume(vm, "C:", "NTFS", os));
    OK(blockdelta_vm_add_windows_volume(vm, "E:", "ReFS", data));
    OK(blockdelta_vm_validate(vm, &r));
    CHECK(blockdelta_report_count(r) == 0);
    blockdelta_report_free(r);
    OK(blockdelta_vm_add_windows_volume(vm, "D:", "ReFS", os));
    OK(blockdelta_vm_validate(vm, &r));
    CHECK(blockdelta_report_count(r) == 1 && has_rule(r, 19));
    char subject[8];
    OK(blockdelta_report_subject(r, 0, subject, sizeof subject, NULL));
    CHECK(strcmp(subject, "D:") == 0);
    blockdelta_report_free(r);
    CHECK(blockdelta_vm_add_windows_volume(vm, NULL, "NTFS", os) == BLOCKDELTA_RESULT_NULL_PARAMETER);
    OK(blockdelta_vm_add_windows_volume(vm, "F:", "NTFS", 5));
    CHECK(blockdelta_vm_validate(vm, &r) == BLOCKDELTA_RESULT_SUPPORT_INVALID_DESCRIPTION);
    blockdelta_vm_free(vm);
    blockdelta_vm_free(NULL);
    blockdelta_report_free(NULL);
    CHECK(blockdelta_report_count(NULL) == 0);
}

static void config_server(void) {
    blockdelta_config_server *cs = NULL;
    OK(blockdelta_config_server_new(&cs));
    blockdelta_report *r = NULL;
    OK(blockdelta_config_server_validate(cs, &r));
    CHECK(blockdelta_report_count(r) == 0);
    blockdelta_report_free(r);

    OK(blockdelta_config_server_set_hardware(cs, 4, 16 * GB, 3, 600 * GB, 500 * GB));
    OK(blockdelta_config_server_set_os(cs, "Windows Server 2016", false, "en-us"));
    OK(blockdelta_config_server_set_network(cs, true, "E1000", true));
    OK(blockdelta_config_server_add_port_in_use(cs, 9443));
    OK(blockdelta_config_server_add_role(cs, "IIS"));
    OK(blockdelta_config_server_add_group_policy(cs, "Turn on Script Execution"));
    OK(blockdelta_config_server_set_version(cs, "9.13", false));
    OK(blockdelta_config_server_validate(cs, &r));
    CHECK(blockdelta_report_count(r) == 8);
    CHECK(has_rule(r, 101) && has_rule(r, 105) && has_rule(r, 107) && has_rule(r, 109));
    CHECK(has_rule(r, 111) && has_rule(r, 112) && has_rule(r, 113) && has_rule(r, 114));
    blockdelta_report_free(r);
    CHECK(blockdelta_config_server_set_version(cs, "nine", false) == BLOCKDELTA_RESULT_SUPPORT_INVALID_AGENT_VERSION);
    blockdelta_config_server_free(cs);
}

static void planner(void) {
    blockdelta_plan *p = NULL;
    OK(blockdelta_plan_new(&p));
    OK(blockdelta_plan_add_disk(p, "db01", "sda", 30, 12 * MB, 30 * MB, 64 * 1024, 0));
    OK(blockdelta_plan_add_disk(p, "db01", "sdb", 0, 3 * MB, 4 * MB, 8 * 1024, 0));
    OK(blockdelta_plan_add_disk(p, "big", "sda", 50, 0, 0, 64 * 1024, 3 * TB));
    blockdelta_plan_totals t;
    CHECK(blockdelta_plan_get_totals(p, &t) == BLOCKDELTA_RESULT_INVALID_ARGUMENT); /* not evaluated yet */
    OK(blockdelta_plan_evaluate(p));
    OK(blockdelta_plan_get_totals(p, &t));
    CHECK(t.vms == 2 && t.process_servers == 2);
    blockdelta_plan_disk d;
    OK(blockdelta_plan_get_disk(p, 1, &d));
    CHECK(d.exceeds_rate && d.limit_bytes_per_second == 2 * MB);
    OK(blockdelta_plan_get_disk(p, 0, &d));
    CHECK(!d.exceeds_rate && d.limit_bytes_per_second == 20 * MB);
    blockdelta_plan_vm v;
    char name[16];
    OK(blockdelta_plan_get_vm(p, 1, &v, name, sizeof name, NULL));
    CHECK(strcmp(name, "big") == 0 && v.exceeds_process_server && !v.exceeds_average);
    OK(blockdelta_plan_get_vm(p, 0, &v, NULL, 0, NULL));
    CHECK(v.average_bytes_per_second == 15 * MB && !v.exceeds_average);
    CHECK(blockdelta_plan_get_vm(p, 2, &v, NULL, 0, NULL) == BLOCKDELTA_RESULT_INVALID_ARGUMENT);

    OK(blockdelta_plan_add_disk(p, "bad", "sda", 0, 5, 4, 8192, 0)); /* peak below average */
    CHECK(blockdelta_plan_evaluate(p) == BLOCKDELTA_RESULT_SUPPORT_INVALID_DESCRIPTION);
    char msg[128];
    OK(blockdelta_plan_last_error(p, msg, sizeof msg, NULL));
    CHECK(strstr(msg, "below the average") != NULL);
    CHECK(blockdelta_plan_add_disk(p, "x", "y", 7, 1, 1, 1, 0) == BLOCKDELTA_RESULT_SUPPORT_UNKNOWN_STORAGE_TARGET);
    blockdelta_plan_free(p);
}

int main(void) {
    kernels();
    operating_systems();
    filesystems_and_features();
    churn();
    vm_validator();
    config_server();
    planner();
    if (failures) {
        fprintf(stderr, "support.c: %d checks failed\n", failures);
        return 1;
    }
    return 0;
}
