namespace VethTrace.Tracing;

/// <summary>
/// Where a source's interface comes from: a file's interface, and for a Linux cooked v2 record (tcpdump -i any) the
/// interface index inside it. Live hops are not keyed: <see cref="InterfaceRegistry.Add(string, InterfaceRole, RoleSource)"/> registers them.
/// </summary>
public readonly record struct InterfaceKey(int File, int Interface, int Index);

/// <summary>
/// The interfaces of one trace: dense ids (the correlator's), the name each is shown by, its role on the path and how
/// that role was decided (<see cref="RoleSource"/>; docs/DESIGN.md, "Roles").
/// </summary>
/// <remarks>
/// Interfaces are added by one thread (replay's reading thread, or follow's before capturing starts and when it
/// reattaches) while another reads roles (the correlator orders ties by role): the role table is replaced, never
/// changed in place, so <see cref="RoleOf"/> needs no lock; the two writers (the adding thread, and the matching
/// thread when inference decides a role) replace it under a lock. <see cref="IdOf"/> keeps the last key asked for and is
/// for the one thread that adds.
/// </remarks>
public sealed class InterfaceRegistry(string? egress = null, IReadOnlyDictionary<string, InterfaceRole>? given = null)
{
    private readonly IReadOnlyDictionary<string, InterfaceRole> _given = given ?? new Dictionary<string, InterfaceRole>();
    private readonly Dictionary<InterfaceKey, int> _ids = [];
    private readonly HashSet<string> _taken = [];
    private readonly List<string> _names = [];
    private (InterfaceRole Role, RoleSource Source)[] _roles = [];
    private readonly Lock _write = new();
    /// <summary>The last key asked for and its id: packets come in runs from one interface, so most lookups end here.</summary>
    private (InterfaceKey Key, int Id) _last = (new InterfaceKey(-1, -1, -1), -1);

    /// <summary>The interface named as the host's egress (<c>--egress</c>), or null.</summary>
    public string? Egress { get; } = egress;

    /// <summary>The names the interfaces are shown by, by id.</summary>
    public IReadOnlyList<string> Names => _names;

    public int Count => _names.Count;

    /// <summary>
    /// The id of the interface with <paramref name="key"/>, added under <paramref name="name"/> the first time. Two
    /// interfaces with one name (two containers' eth0 in one capture) stay apart, the second shown as eth0#2. Its
    /// role is the one given for its name (<c>--role</c>, <c>--egress</c>), else the one its name decides, else not
    /// known (<see cref="RoleSource.Default"/>: taken for the egress until inference decides).
    /// </summary>
    public int IdOf(InterfaceKey key, string name)
    {
        if (_last.Key.File == key.File && _last.Key.Interface == key.Interface && _last.Key.Index == key.Index)
        {
            return _last.Id;
        }
        if (!_ids.TryGetValue(key, out int id))
        {
            id = Add(name, Given(name) ?? (InterfaceRoles.TryFromName(name, out InterfaceRole role) ? (role, RoleSource.Name) : (InterfaceRole.Egress, RoleSource.Default)));
            _ids[key] = id;
        }
        _last = (key, id);
        return id;
    }

    /// <summary>
    /// Adds an interface whose role is known (a live hop resolved from the topology, or given); a role given for its
    /// name on the command line (<c>--role</c>) still comes first.
    /// </summary>
    public int Add(string name, InterfaceRole role, RoleSource source) => Add(name, Given(name) ?? (role, source));

    /// <summary>Whether interface <paramref name="id"/>'s role was decided by anything (name, given, topology, inference).</summary>
    public bool IsKnown(int id) => Volatile.Read(ref _roles)[id].Source != RoleSource.Default;

    /// <summary>
    /// The role given for <paramref name="name"/>: by the name itself, or by the interface's name without follow's
    /// namespace suffix (<c>eth0</c> for <c>eth0(web)</c> or <c>eth0@1234</c>).
    /// </summary>
    private (InterfaceRole, RoleSource)? Given(string name)
    {
        if (_given.TryGetValue(name, out InterfaceRole role))
        {
            return (role, RoleSource.Given);
        }
        int suffix = name.IndexOfAny(['(', '@']);
        if (suffix > 0 && _given.TryGetValue(name[..suffix], out role))
        {
            return (role, RoleSource.Given);
        }
        return name == Egress ? (InterfaceRole.Egress, RoleSource.Given) : null;
    }

    /// <summary>
    /// Gives interface <paramref name="id"/> another role, saying how it was decided: the one place where a role
    /// given on the command line or inferred from the traffic replaces the guess from the name. Takes effect for the
    /// journeys the correlator orders from then on.
    /// </summary>
    public void Decide(int id, InterfaceRole role, RoleSource source)
    {
        // The matching thread decides (inference) while the reading thread may add: one writer at a time, or a copy
        // made before the other's write would lose it.
        lock (_write)
        {
            var roles = (ValueTuple<InterfaceRole, RoleSource>[])_roles.Clone();
            roles[id] = (role, source);
            Volatile.Write(ref _roles, roles);
        }
    }

    /// <summary>Puts another interface in <paramref name="id"/>'s place (follow's hop after the container restarted).</summary>
    public void Replace(int id, string name, InterfaceRole role, RoleSource source)
    {
        _taken.Remove(_names[id]);
        _names[id] = Unique(name);
        (role, source) = Given(name) ?? (role, source);
        Decide(id, role, source);
    }

    public InterfaceRole RoleOf(int id) => Volatile.Read(ref _roles)[id].Role;

    public RoleSource RoleSourceOf(int id) => Volatile.Read(ref _roles)[id].Source;

    private int Add(string name, (InterfaceRole Role, RoleSource Source) role)
    {
        int id = _names.Count;
        _names.Add(Unique(name));
        lock (_write)
        {
            Volatile.Write(ref _roles, [.. _roles, role]);
        }
        return id;
    }

    private string Unique(string name)
    {
        string shown = name;
        for (int n = 2; !_taken.Add(shown); n++)
        {
            shown = $"{name}#{n}";
        }
        return shown;
    }
}
