import DenyUser
import Host
import LogPlugin
import PasswordFilePlugin
import PluginAPI
import PrefixRewrite
import TCPPlugin

// The plugins this broker can load: from Midge a TCP listener, Mosquitto password files and the log (which
// Mosquitto's log_type directives configure), and this package's two. A config file chooses among them
// (midge.conf).
let registry = PluginRegistry([
    TCPTransport.descriptor,
    PasswordFilePlugin.descriptor,
    LogHook.descriptor,
    PrefixRewriteHook.descriptor,
    DenyUserPlugin.descriptor,
])

await MidgeMain.run(registry: registry)
