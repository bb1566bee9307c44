namespace VethTrace.Capture.Docker;

public enum ContainerMatchStatus : byte
{
    Found,
    NotFound,
    Ambiguous,
}

/// <summary>The outcome of matching a name or ID prefix; <see cref="Candidates"/> lists the ambiguous matches.</summary>
public sealed record ContainerMatch(ContainerMatchStatus Status, DockerContainerSummary? Container, IReadOnlyList<DockerContainerSummary> Candidates);

/// <summary>
/// Resolves what a user typed to one container the way the Docker daemon does (daemon.GetContainer): an exact
/// full ID first, then an exact name (with or without the leading slash), then a unique ID prefix. A prefix
/// matching several containers is ambiguous, never "the first one".
/// </summary>
public static class ContainerNameResolver
{
    public static ContainerMatch Match(IReadOnlyList<DockerContainerSummary> containers, string nameOrIdPrefix)
    {
        ArgumentNullException.ThrowIfNull(containers);
        string wanted = (nameOrIdPrefix ?? string.Empty).Trim();
        if (wanted.Length == 0)
        {
            return new ContainerMatch(ContainerMatchStatus.NotFound, null, []);
        }
        foreach (DockerContainerSummary container in containers)
        {
            if (string.Equals(container.Id, wanted, StringComparison.Ordinal))
            {
                return new ContainerMatch(ContainerMatchStatus.Found, container, [container]);
            }
        }
        string name = wanted.TrimStart('/');
        foreach (DockerContainerSummary container in containers)
        {
            if (container.Names.Contains(name, StringComparer.Ordinal))
            {
                return new ContainerMatch(ContainerMatchStatus.Found, container, [container]);
            }
        }
        // IDs are lowercase hex; a prefix with anything else cannot match one.
        if (!IsHex(wanted))
        {
            return new ContainerMatch(ContainerMatchStatus.NotFound, null, []);
        }
        string prefix = wanted.ToLowerInvariant();
        DockerContainerSummary[] matches = [.. containers.Where(container => container.Id.StartsWith(prefix, StringComparison.Ordinal))];
        return matches.Length switch
        {
            0 => new ContainerMatch(ContainerMatchStatus.NotFound, null, []),
            1 => new ContainerMatch(ContainerMatchStatus.Found, matches[0], matches),
            _ => new ContainerMatch(ContainerMatchStatus.Ambiguous, null, matches),
        };
    }

    /// <summary><see cref="Match"/>, with NotFound and Ambiguous turned into a one-line <see cref="DockerException"/>.</summary>
    public static DockerContainerSummary Resolve(IReadOnlyList<DockerContainerSummary> containers, string nameOrIdPrefix)
    {
        ContainerMatch match = Match(containers, nameOrIdPrefix);
        return match.Status switch
        {
            ContainerMatchStatus.Found => match.Container!,
            ContainerMatchStatus.Ambiguous => throw new DockerException(DockerErrorKind.Ambiguous,
                $"container ID prefix {nameOrIdPrefix} is ambiguous: it matches {string.Join(", ", match.Candidates.Take(5).Select(c => $"{c.Name} ({c.Id[..Math.Min(12, c.Id.Length)]})"))}" +
                (match.Candidates.Count > 5 ? $" and {match.Candidates.Count - 5} more" : string.Empty)),
            _ => throw new DockerException(DockerErrorKind.NotFound, $"no such container: {nameOrIdPrefix}"),
        };
    }

    private static bool IsHex(string text)
    {
        foreach (char c in text)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }
        return true;
    }
}
