# Start one live migration and return at once (-Wait 0); run locally on a cluster node.
Move-ClusterVirtualMachineRole -Name $P.vm -Node $P.node -MigrationType Live -Wait 0|Out-Null
ConvertTo-Json -Compress @{ok=$true;data=@{started=$true}}
