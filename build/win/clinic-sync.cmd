@echo off
rem The clinic-sync command of the installed ClinicSync app: the app runs the bundled command
rem line as Node, so the computer needs no Node.js.
setlocal
set ELECTRON_RUN_AS_NODE=1
"%~dp0ClinicSync.exe" "%~dp0resources\app.asar.unpacked\dist\cli\clinic-sync.mjs" %*
