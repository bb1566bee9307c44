using VethTrace.Text;

namespace VethTrace.Cli.Output;

/// <summary>
/// Terminal-safe forms (<see cref="TerminalText.Escape"/>) of the few names a per-packet listing prints over and over:
/// each name object is escaped the first time it is seen, and later packets get the same escaped string back.
/// Keyed by reference: an interface's name is one string object for the whole file, so this costs a pointer hash.
/// </summary>
internal sealed class EscapedNames
{
    private readonly Dictionary<string, string> _escaped = new(ReferenceEqualityComparer.Instance);
    private string? _lastName;
    private string _lastEscaped = "";

    public string Of(string name)
    {
        if (ReferenceEquals(name, _lastName))
        {
            return _lastEscaped;
        }
        if (!_escaped.TryGetValue(name, out string? escaped))
        {
            escaped = TerminalText.Escape(name);
            _escaped[name] = escaped;
        }
        _lastName = name;
        _lastEscaped = escaped;
        return escaped;
    }
}
