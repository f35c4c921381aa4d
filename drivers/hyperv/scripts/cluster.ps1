# Cluster view, read-only, run on any node: nodes, VM roles, CSVs, failed resources.
$c=Get-Cluster
$r=@{name=[string]$c.Name;max_parallel_migrations=[int]$c.MaximumParallelMigrations;enforced_anti_affinity=($c.ClusterEnforcedAntiAffinity -eq 1);quorum=[string](Get-ClusterQuorum).QuorumType}
$r.nodes=@(Get-ClusterNode|%{@{name=[string]$_.Name;state=[string]$_.State;drain_status=[string]$_.DrainStatus;mark=[string]$_.Description}})
$r.groups=@(Get-ClusterGroup|?{[string]$_.GroupType -eq 'VirtualMachine'}|%{$g=$_
$vr=@($g|Get-ClusterResource|?{$_.ResourceType -like 'Virtual Machine'})
@{name=[string]$g.Name;owner=[string]$g.OwnerNode;state=[string]$g.State;preferred=@(($g|Get-ClusterOwnerNode).OwnerNodes|%{[string]$_.Name});possible=@($vr|%{($_|Get-ClusterOwnerNode).OwnerNodes}|%{[string]$_.Name});anti_affinity=@($g.AntiAffinityClassNames|%{[string]$_})}})
$r.csvs=@(Get-ClusterSharedVolume|%{@{name=[string]$_.Name;state=[string]$_.State;owner=[string]$_.OwnerNode}})
$r.failed=@(Get-ClusterResource|?{[string]$_.State -eq 'Failed'}|%{@{name=[string]$_.Name;group=[string]$_.OwnerGroup;owner=[string]$_.OwnerNode}})
ConvertTo-Json -Compress -Depth 6 @{ok=$true;data=$r}
