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
            "Without --engine or DOCKER_HOST, the first of /var/run/docker.sock and /run/podman/podman.sock whose daemon answers " +
            "names the containers; the 'engine:' line says which.");
        var engine = CommonOptions.Engine();
        command.Options.Add(engine);
        command.SetAction(async (parseResult, cancel) =>
        {
            try
            {
                var listing = await VethTrace.Capture.Topology.HostInterfaces.ListAsync(VethTrace.Capture.Docker.DockerClient.FromEnvironment(parseResult.GetValue(engine)), cancel);
                listing.Format(output);
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
