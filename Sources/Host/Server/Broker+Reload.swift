import PluginAPI

/// Reloading the plugins' state (SIGHUP, `watch_interval`), all or nothing.
extension Broker {
    /// Reloads everything, all or nothing (SIGHUP, or a watched file changed): every reloadable plugin
    /// (password file, ACL file, SQLite, TLS certificates, key, CA and CRL, ...) reads and validates its new
    /// state first; only when all succeeded are they all put in force, at once. Any failure keeps the last
    /// good state everywhere, is logged with file and reason, and counts as a failed reload. After a
    /// successful reload connected clients are checked again and those no longer accepted are disconnected.
    /// Reloads run one at a time, in the order asked. `onlyChanged` (the file watcher) reloads only the
    /// plugins whose files differ from what they loaded last, so a plugin that cannot read an unchanged file
    /// (a key readable only before `user` dropped privileges, say) does not block the others' changes;
    /// SIGHUP reloads everything. Returns whether the new state is in force.
    @discardableResult
    public func reload(reason: String = "SIGHUP", onlyChanged: Bool = false) async -> Bool {
        let next = reloadQueue.withLockedValue { latest in
            let previous = latest
            latest = Task { [self] () async -> Bool in
                _ = await previous?.value
                return await reloadNow(reason: reason, onlyChanged: onlyChanged)
            }
            return latest!
        }
        return await next.value
    }

    private func reloadNow(reason: String, onlyChanged: Bool) async -> Bool {
        var chosen: [(plugin: any ReloadablePlugin, files: FileWatcher.Snapshot)] = []
        for reloadable in reloadables {
            let files = FileWatcher.snapshot(of: reloadable.watchedFiles)
            if onlyChanged && !files.isEmpty
                && loadedFiles.withLockedValue({ $0[ObjectIdentifier(reloadable)] }) == files { continue }
            chosen.append((reloadable, files))
        }
        var prepared: [PreparedReload] = []
        var failures = 0
        for (reloadable, _) in chosen {
            do {
                prepared.append(try await reloadable.prepareReload())
            } catch {
                failures += 1
                logger.error("Reload (\(reason)) failed: \(error)")
            }
        }
        if failures == 0 {
            for step in prepared { await step.commit() }
            loadedFiles.withLockedValue { loaded in
                for (reloadable, files) in chosen { loaded[ObjectIdentifier(reloadable)] = files }
            }
            logger.notice("Reloaded (\(reason)).")
        } else {
            logger.error("Reload (\(reason)) failed with \(failures) error(s), see above: nothing was changed, the last good state stays in force.")
        }
        services.countReload(failed: failures > 0)
        // Clients are checked again when their credentials or rules may have changed (not for certificates).
        if failures == 0 && chosen.contains(where: { !($0.plugin is any TransportPlugin || $0.plugin is any ConnectionDecoratorPlugin) }) {
            for handle in router.connectedHandles() { handle.revalidate() }
        }
        if !hooks.reload.isEmpty {
            let loop = group.next()
            try? await hooks.notifyAll(hooks.reload, event: "reload", on: loop) { try $0.reloaded(on: loop) }.get()
        }
        return failures == 0
    }

    /// The plugins, listeners and decorators whose state can be reloaded.
    var reloadables: [any ReloadablePlugin] { Self.reloadables(plugins: plugins, listeners: listeners) }

    static func reloadables(plugins: [any Plugin], listeners: [ListenerStack]) -> [any ReloadablePlugin] {
        (plugins + listeners.flatMap(\.plugins)).compactMap { $0 as? any ReloadablePlugin }
    }

    /// `watch_interval`: polls the reloadables' files (as they were when `init` loaded them) and reloads when
    /// one changed.
    func startWatchingFiles() {
        guard let watcher = fileWatcher else { return }
        let loop = group.next()
        watcher.start(on: loop) { [weak self] changed in
            guard let self else { return loop.makeSucceededFuture(true) }
            self.logger.notice("Changed: \(changed.joined(separator: ", ")); reloading.")
            return loop.makeFutureWithTask { await self.reload(reason: "files changed", onlyChanged: true) }
        }
        logger.notice("Watching \(watcher.paths.count) file(s) for changes every \(Double(config.watchIntervalMilliseconds) / 1000) s: \(watcher.paths.joined(separator: ", ")).")
    }
}
