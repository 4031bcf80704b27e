// The part of fs-native-extensions (advisory file locks with prebuilt binaries) that src/db/lock.ts uses.
declare module 'fs-native-extensions' {
  interface LockOptions {
    /** A shared (read) lock instead of an exclusive one. */
    shared?: boolean;
  }
  interface FsNativeExtensions {
    /** Takes the lock on the whole file without waiting: false when another open file description holds it. */
    tryLock(fd: number, options?: LockOptions): boolean;
    unlock(fd: number): void;
  }
  const fsExt: FsNativeExtensions;
  export default fsExt;
}
