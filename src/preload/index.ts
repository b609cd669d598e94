/*
 * The window's preload (sandboxed, context-isolated): exposes SyncApi to the page as
 * window.clinicSync through contextBridge, and nothing else. The logic is in bridge.ts.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { createBridgeApi, forContextBridge } from './bridge.js';
import { BRIDGE_KEY } from './page.js';

contextBridge.exposeInMainWorld(BRIDGE_KEY, forContextBridge(createBridgeApi(ipcRenderer)));
