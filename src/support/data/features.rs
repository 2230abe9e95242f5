//! Features by key. `f(...)` is the same answer for VMware VMs and physical servers.

use crate::support::features::{Area, Feature, Support};
use Area::*;
use Support::{Conditional as C, No as N, NotApplicable as NA, Yes as Y};

const fn f(key: &'static str, area: Area, both: Support, note: &'static str) -> Feature {
    Feature {
        key,
        area,
        vmware: both,
        physical: both,
        note,
    }
}
const fn g(
    key: &'static str,
    area: Area,
    vmware: Support,
    physical: Support,
    note: &'static str,
) -> Feature {
    Feature {
        key,
        area,
        vmware,
        physical,
        note,
    }
}

pub(crate) const FEATURES: &[Feature] = &[
    // Host and guest network.
    g("host_nic_teaming", Network, Y, N, ""),
    f("host_vlan", Network, Y, ""),
    f("host_ipv4", Network, Y, ""),
    f("host_ipv6", Network, N, ""),
    f("guest_nic_teaming", Network, N, ""),
    f("guest_ipv4", Network, Y, ""),
    f("guest_ipv6", Network, N, ""),
    f("guest_static_ip_windows", Network, Y, ""),
    f("guest_static_ip_linux", Network, Y, "Machines use DHCP on failback."),
    f("guest_multiple_nics", Network, Y, ""),
    // The Azure VM's network after failover.
    f("azure_expressroute", AzureNetwork, Y, ""),
    f("azure_internal_load_balancer", AzureNetwork, Y, ""),
    f("azure_external_load_balancer", AzureNetwork, Y, ""),
    f("azure_traffic_manager", AzureNetwork, Y, ""),
    f("azure_multi_nic", AzureNetwork, Y, ""),
    f("azure_reserved_ip", AzureNetwork, Y, ""),
    f("azure_ipv4", AzureNetwork, Y, ""),
    f("azure_retain_source_ip", AzureNetwork, Y, ""),
    f("azure_vnet_service_endpoints", AzureNetwork, Y, ""),
    f("azure_accelerated_networking", AzureNetwork, N, ""),
    // Storage.
    f("dynamic_disk", Storage, C, "The OS disk must be a basic disk; data disks may be dynamic."),
    f("docker_disk", Storage, N, ""),
    g("host_nfs", Storage, Y, N, ""),
    f("host_san", Storage, Y, "iSCSI and FC."),
    g("host_vsan", Storage, Y, NA, ""),
    f("host_mpio", Storage, Y, "Tested with Microsoft DSM, EMC PowerPath 5.7 SP4 and EMC PowerPath DSM for CLARiiON."),
    g("host_vvols", Storage, Y, NA, ""),
    f("guest_vmdk", Storage, Y, ""),
    f("guest_shared_cluster_disk", Storage, N, ""),
    f("guest_encrypted_disk", Storage, N, ""),
    f("guest_nfs", Storage, N, ""),
    f("guest_iscsi", Storage, N, ""),
    f("guest_smb3", Storage, N, ""),
    g("guest_rdm", Storage, Y, NA, ""),
    f("guest_disk_over_1tb", Storage, Y, "Up to 4,095 GB; every disk must be larger than 1,024 MB."),
    f("guest_4k_logical_4k_physical", Storage, Y, ""),
    f("guest_4k_logical_512_physical", Storage, Y, ""),
    f("guest_striped_volume_over_4tb", Storage, Y, "Including LVM logical volumes."),
    f("guest_storage_spaces", Storage, N, ""),
    f("guest_hot_add_remove_disk", Storage, N, ""),
    f("guest_exclude_disk", Storage, Y, ""),
    f("guest_mpio", Storage, N, ""),
    f(
        "guest_uefi_boot",
        Storage,
        C,
        "Migration only (no failback) of Windows Server 2012 or later, at most four partitions on the OS disk, agent 9.13 or later, NTFS only.",
    ),
    // Linux guest storage devices.
    f("paravirtualized_storage", LinuxStorage, N, ""),
    f("multi_queue_block_io", LinuxStorage, N, ""),
    g("hp_cciss_controller", LinuxStorage, NA, N, ""),
    // Disk management on a replicated VM.
    f("resize_disk", DiskManagement, Y, ""),
    f("add_disk", DiskManagement, N, "Disable replication, add the disk, then enable replication again."),
    // Replication channels.
    f("offloaded_data_transfer", ReplicationChannel, N, ""),
    f("offline_seeding", ReplicationChannel, N, ""),
    f("azure_data_box", ReplicationChannel, N, ""),
    // Azure storage.
    f("locally_redundant_storage", AzureStorage, Y, ""),
    f("geo_redundant_storage", AzureStorage, Y, ""),
    f("read_access_geo_redundant_storage", AzureStorage, Y, ""),
    f("cool_storage", AzureStorage, N, ""),
    f("hot_storage", AzureStorage, N, ""),
    f("block_blobs", AzureStorage, N, ""),
    f("storage_service_encryption", AzureStorage, Y, ""),
    f("premium_storage", AzureStorage, Y, ""),
    f("import_export_service", AzureStorage, N, ""),
    f("storage_firewall", AzureStorage, Y, "Firewalls for virtual networks on the target or cache storage account."),
    f("general_purpose_v2_storage", AzureStorage, N, "Neither the hot nor the cool tier."),
    // Azure compute.
    f("availability_sets", AzureCompute, Y, ""),
    f("availability_zones", AzureCompute, N, ""),
    f("hybrid_use_benefit", AzureCompute, Y, ""),
    f("managed_disks", AzureCompute, Y, ""),
    // Vault operations.
    f("move_vault_across_resource_groups", Vault, N, "Within or across subscriptions."),
    f("move_resources_across_resource_groups", Vault, N, "Storage, network and Azure VMs, within or across subscriptions."),
];
