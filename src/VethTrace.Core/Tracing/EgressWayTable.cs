using System.Runtime.CompilerServices;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// The ways to the egress the <see cref="Correlator"/> has seen: (destination, inside interface) pairs from which a
/// journey went on to the egress, each with its latest time. Every journey from the inside to the egress writes one
/// per inside interface it crossed (two per journey through a veth and a bridge), so this is an open-addressing table
/// of plain structs (linear probing, a power of two of slots, at most half full) instead of a
/// <see cref="Dictionary{TKey, TValue}"/> of tuples, whose hash of an <see cref="IpAddress"/> and an interface went
/// through <see cref="HashCode"/> and whose entries sit behind a second array.
/// </summary>
internal sealed class EgressWayTable
{
    private const int MinimumSlots = 64;

    private Slot[] _slots = new Slot[MinimumSlots];
    private int _mask = MinimumSlots - 1;

    /// <summary>The ways held.</summary>
    public int Count { get; private set; }

    /// <summary>Records that a journey from <paramref name="interfaceId"/> to <paramref name="destination"/> reached the egress at <paramref name="timestampNs"/>.</summary>
    public void Saw(in IpAddress destination, int interfaceId, long timestampNs)
    {
        ref Slot slot = ref Find(in destination, interfaceId, out bool found);
        if (!found)
        {
            if ((Count + 1) * 2 > _slots.Length)
            {
                Resize(_slots.Length * 2);
                slot = ref Find(in destination, interfaceId, out _);
            }
            slot.Destination = destination;
            slot.InterfacePlusOne = interfaceId + 1;
            Count++;
        }
        slot.LastNs = timestampNs;
    }

    /// <summary>True when a journey from <paramref name="interfaceId"/> to <paramref name="destination"/> reached the egress (and the way has not expired).</summary>
    public bool Contains(in IpAddress destination, int interfaceId)
    {
        Find(in destination, interfaceId, out bool found);
        return found;
    }

    /// <summary>Forgets the ways last seen more than <paramref name="timeoutNs"/> before <paramref name="nowNs"/>.</summary>
    public void Sweep(long nowNs, long timeoutNs)
    {
        int expired = 0;
        foreach (ref readonly Slot slot in _slots.AsSpan())
        {
            if (slot.InterfacePlusOne != 0 && nowNs - slot.LastNs > timeoutNs)
            {
                expired++;
            }
        }
        if (expired == 0)
        {
            return;
        }
        Slot[] old = _slots;
        int live = Count - expired;
        int length = MinimumSlots;
        while (live * 2 > length)
        {
            length *= 2;
        }
        _slots = new Slot[length];
        _mask = length - 1;
        Count = 0;
        foreach (ref readonly Slot slot in old.AsSpan())
        {
            if (slot.InterfacePlusOne != 0 && nowNs - slot.LastNs <= timeoutNs)
            {
                Insert(in slot);
            }
        }
    }

    /// <summary>The slot of the way, or the empty slot where it would go.</summary>
    private ref Slot Find(in IpAddress destination, int interfaceId, out bool found)
    {
        Slot[] slots = _slots;
        int index = Home(in destination, interfaceId);
        while (true)
        {
            ref Slot slot = ref slots[index];
            if (slot.InterfacePlusOne == 0)
            {
                found = false;
                return ref slot;
            }
            if (slot.InterfacePlusOne == interfaceId + 1 && slot.Destination.Equals(destination))
            {
                found = true;
                return ref slot;
            }
            index = (index + 1) & _mask;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(in IpAddress destination, int interfaceId)
    {
        UInt128 value = destination.Value;
        ulong hash = StableHash.Add(StableHash.Seed, (ulong)(value >> 64));
        hash = StableHash.Add(hash, (ulong)value);
        hash = StableHash.Finish(StableHash.Add(hash, (ulong)destination.Version << 32 | (uint)interfaceId));
        return (int)(hash >> 32) & _mask;
    }

    private void Resize(int length)
    {
        Slot[] old = _slots;
        _slots = new Slot[length];
        _mask = length - 1;
        Count = 0;
        foreach (ref readonly Slot slot in old.AsSpan())
        {
            if (slot.InterfacePlusOne != 0)
            {
                Insert(in slot);
            }
        }
    }

    private void Insert(in Slot moved)
    {
        ref Slot slot = ref Find(in moved.Destination, moved.InterfacePlusOne - 1, out _);
        slot = moved;
        Count++;
    }

    private struct Slot
    {
        public IpAddress Destination;
        public long LastNs;
        /// <summary>The inside interface's id plus one; 0 marks an empty slot.</summary>
        public int InterfacePlusOne;
    }
}
