# The SYSTEM task's result once its file exists; the task and its files are removed then.
$f="$env:ProgramData\Drover\wu-$($P.id).json"
if(!(Test-Path $f)){ConvertTo-Json -Compress @{ok=$true;data=@{done=$false}};exit 0}
$j=Get-Content -Raw $f|ConvertFrom-Json
Unregister-ScheduledTask -TaskName "Drover-WU-$($P.id)" -Confirm:$false -ErrorAction SilentlyContinue
Remove-Item $f,"$env:ProgramData\Drover\wu-$($P.id).ps1" -ErrorAction SilentlyContinue
ConvertTo-Json -Compress -Depth 6 @{ok=$true;data=@{done=$true;result=$j}}
