# Pause (no drain): Suspend-ClusterNode without -Drain; the owner mark goes into the
# node's Description, which the cluster keeps across the node's reboot.
$n=Get-ClusterNode -Name $P.node
$m=[string]$n.Description
if([string]$n.State -eq 'Paused' -and $m -like 'drover-run:*' -and $m -ne $P.owner){throw "drover:paused_by_other:$m"}
if([string]$n.State -ne 'Paused'){Suspend-ClusterNode -Name $P.node|Out-Null}
if($P.owner -and ($m -eq '' -or $m -like 'drover-run:*')){$n.Description=$P.owner}
ConvertTo-Json -Compress @{ok=$true;data=@{state=[string](Get-ClusterNode -Name $P.node).State}}
