# Readiness of this host after a reboot: boot time, cluster service, node state, CSVs, failed resources.
$o=Get-CimInstance Win32_OperatingSystem
$r=@{computer=[string]$env:COMPUTERNAME;boot=$o.LastBootUpTime.ToUniversalTime().ToString('o');cluster_service=[string](Get-Service ClusSvc).Status}
if($r.cluster_service -eq 'Running'){$r.node_state=[string](Get-ClusterNode -Name $env:COMPUTERNAME).State
$r.csvs_offline=@(Get-ClusterSharedVolume|?{[string]$_.State -ne 'Online'}|%{[string]$_.Name})
$r.failed=@(Get-ClusterResource|?{[string]$_.State -eq 'Failed' -and [string]$_.OwnerNode -eq $env:COMPUTERNAME}|%{[string]$_.Name})}
ConvertTo-Json -Compress -Depth 4 @{ok=$true;data=$r}
