# One host's own view, read-only, run on that host: boot time, Hyper-V host, its VMs.
$o=Get-CimInstance Win32_OperatingSystem
$h=Get-VMHost
$r=@{computer=[string]$env:COMPUTERNAME;boot=$o.LastBootUpTime.ToUniversalTime().ToString('o');cluster_service=[string](Get-Service ClusSvc).Status;memory_mib=[int64]($h.MemoryCapacity/1MB);cpus=[int]$h.LogicalProcessorCount;migration_enabled=[bool]$h.VirtualMachineMigrationEnabled;migration_auth=[string]$h.VirtualMachineMigrationAuthenticationType;max_vm_migrations=[int]$h.MaximumVirtualMachineMigrations;reboot_pending=(Test-Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired')}
$r.vms=@(Get-VM|%{$v=$_;$d=@(Get-VMHardDiskDrive -VM $v)
@{name=[string]$v.Name;state=[string]$v.State;clustered=[bool]$v.IsClustered;cpus=[int]$v.ProcessorCount;dynamic=[bool]$v.DynamicMemoryEnabled;memory_mib=[int64]([math]::Max([int64]$v.MemoryAssigned,[int64]$v.MemoryStartup)/1MB);memory_max_mib=[int64]($v.MemoryMaximum/1MB);local_disks=@($d|?{$_.Path -and $_.Path -notlike 'C:\ClusterStorage\*' -and $_.Path -notlike '\\*'}|%{[string]$_.Path});passthrough=@($d|?{$_.DiskNumber -ne $null}).Count -gt 0;devices=@(Get-VMAssignableDevice -VM $v -ErrorAction SilentlyContinue).Count -gt 0}})
ConvertTo-Json -Compress -Depth 6 @{ok=$true;data=$r}
