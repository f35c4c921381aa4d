# Where a VM role is and how its live migration goes (Msvm_MigrationJob on this host).
$g=Get-ClusterGroup -Name $P.vm
$r=@{owner=[string]$g.OwnerNode;state=[string]$g.State}
$v=Get-VM -Name $P.vm -ErrorAction SilentlyContinue
if($v){$j=@(Get-CimInstance -Namespace root\virtualization\v2 -ClassName Msvm_MigrationJob|?{$_.VirtualSystemName -eq [string]$v.Id})|Select-Object -Last 1
if($j){$r.job=@{state=@('Unknown','Other','New','Starting','Running','Suspended','ShuttingDown','Completed','Terminated','Killed','Exception','Service')[[int]$j.JobState];percent=[int]$j.PercentComplete;target=[string]$j.DestinationHost;error=[string]$j.ErrorDescription}}}
ConvertTo-Json -Compress -Depth 4 @{ok=$true;data=$r}
