/*
 * What the USB transfer reports to front ends (SyncApi, the CLI). Plain JSON, no Node imports:
 * src/api/types.ts re-exports these for the renderer.
 */

/** A removable drive mounted on this computer: a USB key, where transfer files are saved. */
export interface RemovableDrive {
  /** the folder files go in: a mount point like /media/nurse/KEY, or a drive root like E:\ */
  path: string;
  /** the name a person recognises: the volume label, else the folder's name or drive letter */
  label: string;
  /** free and total bytes, or null when the system does not say */
  freeBytes: number | null;
  sizeBytes: number | null;
  /** false when it is mounted read-only: files can be loaded from it, none saved */
  writable: boolean;
}

/** Who a file names as writer or recipient (from its header; checked when it is loaded). */
export interface TransferParty {
  nodeId: string;
  name: string;
}

/**
 * What this computer can do with a transfer file: `load` it (it is for this node), `carry` it
 * (this node wrote it for a neighbour: it waits to be taken there), nothing (`other`: written
 * between two other nodes), or it is `unreadable` (not a transfer file, or its beginning is
 * damaged).
 */
export type TransferFileUse = 'load' | 'carry' | 'other' | 'unreadable';

/** A transfer file found in a folder, newest first. */
export interface TransferFileInfo {
  /** the full path, to give to importTransfer */
  path: string;
  /** the file's name */
  name: string;
  bytes: number;
  from: TransferParty | null;
  to: TransferParty | null;
  /** ISO time it was written (by the writer's clock), or null when unreadable */
  createdAt: string | null;
  use: TransferFileUse;
}

/** Save to a USB key: the file written for this node's parent. */
export interface ExportRequest {
  /** the folder to write into (a drive's path from listDrives, or any folder): a full path */
  dir: string;
}

export interface ExportSummary {
  /** the file written, full path */
  file: string;
  /** the node it is for (this node's parent), by name */
  to: string;
  /** changes in the file: everything the parent has not acknowledged, as far as the key holds */
  sent: number;
  /** the file's size */
  bytes: number;
  /** false when the key could not hold everything: the rest goes with the next file */
  complete: boolean;
}

/** Load from a USB key: apply one file; for a child's file, write the reply. */
export interface ImportRequest {
  /** the transfer file, full path */
  file: string;
  /** where to write the reply for a child's file (default: the file's own folder) */
  replyDir?: string | null;
}

export interface ImportSummary {
  /** the node that wrote the file, by name */
  from: string;
  /** changes in the file new here: applied, or parked waiting for a row they need */
  received: number;
  /** changes in the file this node already had (from an earlier file or over the network) */
  alreadyThere: number;
  /** changes waiting on this node for a row they need, after the import */
  parked: number;
  /** changes written to the reply for the child (0 when no reply was written) */
  sent: number;
  /** the reply for a child's file, full path; null for a file from the parent (no reply needed) */
  replyFile: string | null;
  /** false when the reply could not hold everything for the child: the rest goes next time */
  replyComplete: boolean;
}
