# The cluster's own drain: returns at once; DrainStatus tells the rest.
$n=Get-ClusterNode -Name $P.node
$m=[string]$n.Description
if($m -like 'drover-run:*' -and $m -ne $P.owner -and [string]$n.State -eq 'Paused'){throw "drover:paused_by_other:$m"}
Suspend-ClusterNode -Name $P.node -Drain|Out-Null
if($P.owner -and ($m -eq '' -or $m -like 'drover-run:*')){$n.Description=$P.owner}
ConvertTo-Json -Compress @{ok=$true;data=@{drain_status=[string](Get-ClusterNode -Name $P.node).DrainStatus}}
