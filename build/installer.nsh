; ClinicSync's part of the Windows installer (electron-builder nsis.include).
;
; Uninstalling takes ClinicSync out of the clinic's databases first, so no trigger is left behind
; once the program is gone: the service (if one was installed) is stopped and removed, then
; "clinic-sync uninstall" runs for the service's node and for this user's node. The app itself
; runs it (ClinicSync.exe --uninstall): a desktop node's database password is in this user's
; keyring (DPAPI), which only the app can open. Nothing of this happens on an update, which runs
; the old uninstaller too.

!macro customUnInstall
  ${ifNot} ${isUpdated}
    ; Per-machine: $APPDATA is C:\ProgramData here, where a service's node lives.
    SetShellVarContext all
    DetailPrint "Stopping and removing the ClinicSync service, if one is installed..."
    nsExec::ExecToLog '"$INSTDIR\clinic-sync.cmd" --home "$APPDATA\ClinicSync" service uninstall'
    Pop $0
    DetailPrint "Removing ClinicSync from the service's database, if there is one..."
    ExecWait '"$INSTDIR\ClinicSync.exe" --uninstall "--home=$APPDATA\ClinicSync"' $0
    ${if} $0 != 0
      DetailPrint "ClinicSync could not remove itself from the service's database (exit $0); run clinic-sync uninstall there."
    ${endIf}
    SetShellVarContext current
    DetailPrint "Removing ClinicSync from this user's database, if there is one..."
    ExecWait '"$INSTDIR\ClinicSync.exe" --uninstall' $0
    ${if} $0 != 0
      DetailPrint "ClinicSync could not remove itself from this user's database (exit $0); run clinic-sync uninstall there."
    ${endIf}
    SetShellVarContext all
  ${endIf}
!macroend
