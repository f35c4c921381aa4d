# Fallback: the install runs as SYSTEM in a scheduled task (a network logon may not use the
# Windows Update installer); it writes its JSON result to a file the driver polls for.
$d="$env:ProgramData\Drover";New-Item -ItemType Directory -Force $d|Out-Null
$f="$d\wu-$($P.id).json";$s="$d\wu-$($P.id).ps1";Remove-Item $f -ErrorAction SilentlyContinue
Set-Content -Path $s -Value ("`$ErrorActionPreference='Stop'`n`$o=try{`n"+$P.script+"`n}catch{ConvertTo-Json -Compress @{ok=`$false;error=`"`$_`"}}`n[IO.File]::WriteAllText('$f',`$o)")
$a=New-ScheduledTaskAction -Execute 'powershell.exe' -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$s`""
Register-ScheduledTask -TaskName "Drover-WU-$($P.id)" -Action $a -User 'NT AUTHORITY\SYSTEM' -RunLevel Highest -Force|Out-Null
Start-ScheduledTask -TaskName "Drover-WU-$($P.id)"
ConvertTo-Json -Compress @{ok=$true;data=@{started=$true}}
