using System.CommandLine;
using VethTrace.Text;

namespace VethTrace.Cli.Commands;

/// <summary><c>vethtrace interfaces</c>: the host's bridges and veths with the containers they belong to, and the egress.</summary>
public static class InterfacesCommand
{
    /// <summary>The <c>interfaces</c> command.</summary>
    public static Command Build(TextWriter output, TextWriter error)
    {
        var command = new Command("interfaces", "List the host's bridges and veths with the containers they belong to (name, IP, network mode), " +
            "and the egress: the answer to \"which veth is my container?\".\n\nExamples:\n  vethtrace interfaces\n" +
            "  vethtrace interfaces --engine podman   (rootful Podman's socket, /run/podman/podman.sock)\n" +
            "  DOCKER_HOST=unix:///run/user/1000/docker.sock vethtrace interfaces   (a rootless Docker's socket)\n\n" +
            "Without --engine or DOCKER_HOST, every daemon that answers on /var/run/docker.sock and /run/podman/podman.sock " +
            "names the containers (nothing is started); the 'engine:' line says which.");
        var engine = CommonOptions.Engine();
        command.Options.Add(engine);
        command.SetAction(async (parseResult, cancel) =>
        {
            try
            {
                IReadOnlyList<VethTrace.Capture.Docker.DockerClient> engines = VethTrace.Capture.Docker.DockerClient.AllFromEnvironment(parseResult.GetValue(engine));
                try
                {
                    var listing = await VethTrace.Capture.Topology.HostInterfaces.ListAsync(engines, cancel);
                    listing.Format(output);
                }
                finally
                {
                    foreach (var client in engines)
                    {
                        client.Dispose();
                    }
                }
                return (int)ExitCode.Success;
            }
            catch (VethTrace.Capture.Docker.DockerException e)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
                return (int)ExitCode.ContainerUnavailable;
            }
            catch (VethTrace.Capture.Topology.TopologyException e)
            {
                error.WriteLine(TerminalText.Escape($"vethtrace: {e.Message}"));
                return (int)ExitCode.CaptureFailed;
            }
        });
        return command;
    }
}
