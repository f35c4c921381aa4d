# Schedule a restart a few seconds ahead, so this command returns before the host goes.
$b=(Get-CimInstance Win32_OperatingSystem).LastBootUpTime.ToUniversalTime().ToString('o')
shutdown.exe /r /t ([int]$P.delay_seconds) /d p:2:17 /c 'Drover rolling maintenance'|Out-Null
if($LASTEXITCODE -ne 0){throw "shutdown.exe exit $LASTEXITCODE"}
ConvertTo-Json -Compress @{ok=$true;data=@{boot=$b}}
