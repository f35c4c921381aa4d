# Resume and clear Drover's mark (never someone else's description).
$n=Get-ClusterNode -Name $P.node
if([string]$n.State -eq 'Paused'){Resume-ClusterNode -Name $P.node -Failback $P.failback|Out-Null}
if(([string]$n.Description) -like 'drover-run:*'){$n.Description=''}
ConvertTo-Json -Compress @{ok=$true;data=@{state=[string](Get-ClusterNode -Name $P.node).State}}
