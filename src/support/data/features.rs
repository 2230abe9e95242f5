//! Features by key. `f(...)` is the same answer for VMware VMs and physical servers.

use crate::support::features::{Area, Feature, Support};
use std::ffi::CStr;

use Area::*;
use Support::{Conditional as C, No as N, NotApplicable as NA, Yes as Y};

const fn f(key: &'static CStr, area: Area, both: Support, note: &'static CStr) -> Feature {
    Feature {
        key,
        area,
        vmware: both,
        physical: both,
        note,
    }
}
const fn g(
    key: &'static CStr,
    area: Area,
    vmware: Support,
    physical: Support,
    note: &'static CStr,
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
    g(c"host_nic_teaming", Network, Y, N, c""),
    f(c"host_vlan", Network, Y, c""),
    f(c"host_ipv4", Network, Y, c""),
    f(c"host_ipv6", Network, N, c""),
    f(c"guest_nic_teaming", Network, N, c""),
    f(c"guest_ipv4", Network, Y, c""),
    f(c"guest_ipv6", Network, N, c""),
    f(c"guest_static_ip_windows", Network, Y, c""),
    f(c"guest_static_ip_linux", Network, Y, c"Machines use DHCP on failback."),
    f(c"guest_multiple_nics", Network, Y, c""),
    // The Azure VM's network after failover.
    f(c"azure_expressroute", AzureNetwork, Y, c""),
    f(c"azure_internal_load_balancer", AzureNetwork, Y, c""),
    f(c"azure_external_load_balancer", AzureNetwork, Y, c""),
    f(c"azure_traffic_manager", AzureNetwork, Y, c""),
    f(c"azure_multi_nic", AzureNetwork, Y, c""),
    f(c"azure_reserved_ip", AzureNetwork, Y, c""),
    f(c"azure_ipv4", AzureNetwork, Y, c""),
    f(c"azure_retain_source_ip", AzureNetwork, Y, c""),
    f(c"azure_vnet_service_endpoints", AzureNetwork, Y, c""),
    f(c"azure_accelerated_networking", AzureNetwork, N, c""),
    // Storage.
    f(c"dynamic_disk", Storage, C, c"The OS disk must be a basic disk; data disks may be dynamic."),
    f(c"docker_disk", Storage, N, c""),
    g(c"host_nfs", Storage, Y, N, c""),
    f(c"host_san", Storage, Y, c"iSCSI and FC."),
    g(c"host_vsan", Storage, Y, NA, c""),
    f(c"host_mpio", Storage, Y, c"Tested with Microsoft DSM, EMC PowerPath 5.7 SP4 and EMC PowerPath DSM for CLARiiON."),
    g(c"host_vvols", Storage, Y, NA, c""),
    f(c"guest_vmdk", Storage, Y, c""),
    f(c"guest_shared_cluster_disk", Storage, N, c""),
    f(c"guest_encrypted_disk", Storage, N, c""),
    f(c"guest_nfs", Storage, N, c""),
    f(c"guest_iscsi", Storage, N, c""),
    f(c"guest_smb3", Storage, N, c""),
    g(c"guest_rdm", Storage, Y, NA, c""),
    f(c"guest_disk_over_1tb", Storage, Y, c"Up to 4,095 GB; every disk must be larger than 1,024 MB."),
    f(c"guest_4k_logical_4k_physical", Storage, Y, c""),
    f(c"guest_4k_logical_512_physical", Storage, Y, c""),
    f(c"guest_striped_volume_over_4tb", Storage, Y, c"Including LVM logical volumes."),
    f(c"guest_storage_spaces", Storage, N, c""),
    f(c"guest_hot_add_remove_disk", Storage, N, c""),
    f(c"guest_exclude_disk", Storage, Y, c""),
    f(c"guest_mpio", Storage, N, c""),
    f(
        c"guest_uefi_boot",
        Storage,
        C,
        c"Migration only (no failback) of Windows Server 2012 or later, at most four partitions on the OS disk, agent 9.13 or later, NTFS only.",
    ),
    // Linux guest storage devices.
    f(c"paravirtualized_storage", LinuxStorage, N, c""),
    f(c"multi_queue_block_io", LinuxStorage, N, c""),
    g(c"hp_cciss_controller", LinuxStorage, NA, N, c""),
    // Disk management on a replicated VM.
    f(c"resize_disk", DiskManagement, Y, c""),
    f(c"add_disk", DiskManagement, N, c"Disable replication, add the disk, then enable replication again."),
    // Replication channels.
    f(c"offloaded_data_transfer", ReplicationChannel, N, c""),
    f(c"offline_seeding", ReplicationChannel, N, c""),
    f(c"azure_data_box", ReplicationChannel, N, c""),
    // Azure storage.
    f(c"locally_redundant_storage", AzureStorage, Y, c""),
    f(c"geo_redundant_storage", AzureStorage, Y, c""),
    f(c"read_access_geo_redundant_storage", AzureStorage, Y, c""),
    f(c"cool_storage", AzureStorage, N, c""),
    f(c"hot_storage", AzureStorage, N, c""),
    f(c"block_blobs", AzureStorage, N, c""),
    f(c"storage_service_encryption", AzureStorage, Y, c""),
    f(c"premium_storage", AzureStorage, Y, c""),
    f(c"import_export_service", AzureStorage, N, c""),
    f(c"storage_firewall", AzureStorage, Y, c"Firewalls for virtual networks on the target or cache storage account."),
    f(c"general_purpose_v2_storage", AzureStorage, N, c"Neither the hot nor the cool tier."),
    // Azure compute.
    f(c"availability_sets", AzureCompute, Y, c""),
    f(c"availability_zones", AzureCompute, N, c""),
    f(c"hybrid_use_benefit", AzureCompute, Y, c""),
    f(c"managed_disks", AzureCompute, Y, c""),
    // Vault operations.
    f(c"move_vault_across_resource_groups", Vault, N, c"Within or across subscriptions."),
    f(c"move_resources_across_resource_groups", Vault, N, c"Storage, network and Azure VMs, within or across subscriptions."),
];
