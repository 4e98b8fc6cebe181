import ACLFilePlugin
import LogPlugin
import PasswordFilePlugin
import PluginAPI
import PrometheusPlugin
import SCRAMPlugin
import SQLitePlugin
import SysPlugin
import TCPPlugin
import TLSPlugin
import UserHooks
import WebSocketPlugin

/// The built-in plugins: the one place that lists them. Adding a plugin is a folder under Sources/Plugins, a
/// target in Package.swift (a dependency of this executable), and one line here.
enum BuiltInPlugins {
    static let registry = PluginRegistry([
        // Listeners and what wraps their connections (made from `listener` lines).
        TCPTransport.descriptor,
        TLSDecorator.descriptor,
        WebSocketDecorator.descriptor,
        // Authentication and authorization (`password_file`, `acl_file`, `plugin NAME`).
        PasswordFilePlugin.descriptor,
        ACLFilePlugin.descriptor,
        SQLitePlugin.descriptor,
        SCRAMPlugin.descriptor,
        // Hooks (`log_type`, `sys_interval`, `plugin NAME`).
        LogHook.descriptor,
        SysHook.descriptor,
        PrometheusHook.descriptor,
        // Hooks under Sources/Plugins/UserHooks: one line each.
        TopicRewriteHook.descriptor,
    ])
}
