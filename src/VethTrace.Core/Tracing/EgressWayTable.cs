using System.Runtime.CompilerServices;
using VethTrace.Flows;
using VethTrace.Packets;

namespace VethTrace.Tracing;

/// <summary>
/// The ways to the egress the <see cref="Correlator"/> has seen: (destination, inside interface) pairs from which a
/// journey went on to the egress, each with its latest time. Every journey from the inside to the egress writes one
/// per inside interface it crossed (two per journey through a veth and a bridge), so this is an open-addressing table
/// of 32-byte structs (linear probing, a power of two of slots, at most three quarters full: 39,407 ways on the 10M
/// many-flows file take 2 MiB, about what the dictionary took) instead of a
/// <see cref="Dictionary{TKey, TValue}"/> of tuples, whose hash of an <see cref="IpAddress"/> and an interface went
/// through <see cref="HashCode"/> and whose entries sit behind a second array. The slots are outside the GC heap
/// (<see cref="NativeArray{T}"/>): a doubling gives the old slots back at once instead of leaving them on the
/// large-object heap until a full collection.
/// </summary>
internal sealed class EgressWayTable
{
    private const int MinimumSlots = 64;

    /// <summary>In pages outside the GC heap (<see cref="NativeArray{T}"/>): each doubling gives the old slots back at once.</summary>
    private NativeArray<Slot> _slots = new(MinimumSlots);
    private int _mask = MinimumSlots - 1;

    /// <summary>The ways held.</summary>
    public int Count { get; private set; }

    /// <summary>Records that a journey from <paramref name="interfaceId"/> to <paramref name="destination"/> reached the egress at <paramref name="timestampNs"/>.</summary>
    public void Saw(in IpAddress destination, int interfaceId, long timestampNs)
    {
        ref Slot slot = ref Find(in destination, interfaceId, out bool found);
        if (!found)
        {
            if ((Count + 1) * 4 > _slots.Length * 3)
            {
                Resize(_slots.Length * 2);
                slot = ref Find(in destination, interfaceId, out _);
            }
            UInt128 value = destination.Value;
            slot.High = (ulong)(value >> 64);
            slot.Low = (ulong)value;
            slot.Version = (byte)destination.Version;
            slot.InterfacePlusOne = interfaceId + 1;
            Count++;
        }
        slot.LastNs = timestampNs;
    }

    /// <summary>
    /// Asks for the cache line of the way's home slot, for a <see cref="Saw"/> a little later (the correlator holds a
    /// journey's ways until the next journey's destination differs): on a file of many flows the ways are tens of
    /// thousands, 2 MiB of slots, and each new one was a wait for memory. A hint: a resize in between only wastes it.
    /// </summary>
    public unsafe void Prefetch(in IpAddress destination, int interfaceId)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            UInt128 value = destination.Value;
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(_slots.At(Home((ulong)(value >> 64), (ulong)value, (byte)destination.Version, interfaceId)));
        }
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
        foreach (ref readonly Slot slot in _slots.Span)
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
        NativeArray<Slot> old = _slots;
        int live = Count - expired;
        int length = MinimumSlots;
        while (live * 4 > length * 3)
        {
            length *= 2;
        }
        _slots = new NativeArray<Slot>(length);
        _mask = length - 1;
        Count = 0;
        foreach (ref readonly Slot slot in old.Span)
        {
            if (slot.InterfacePlusOne != 0 && nowNs - slot.LastNs <= timeoutNs)
            {
                Insert(in slot);
            }
        }
        old.Dispose();
    }

    /// <summary>The slot of the way, or the empty slot where it would go.</summary>
    private ref Slot Find(in IpAddress destination, int interfaceId, out bool found)
    {
        UInt128 value = destination.Value;
        ulong high = (ulong)(value >> 64), low = (ulong)value;
        byte version = (byte)destination.Version;
        NativeArray<Slot> slots = _slots;
        int index = Home(high, low, version, interfaceId);
        while (true)
        {
            ref Slot slot = ref slots[index];
            if (slot.InterfacePlusOne == 0)
            {
                found = false;
                return ref slot;
            }
            if (slot.InterfacePlusOne == interfaceId + 1 && slot.Low == low && slot.High == high && slot.Version == version)
            {
                found = true;
                return ref slot;
            }
            index = (index + 1) & _mask;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Home(ulong high, ulong low, byte version, int interfaceId)
    {
        ulong hash = StableHash.Add(StableHash.Seed, high);
        hash = StableHash.Add(hash, low);
        hash = StableHash.Finish(StableHash.Add(hash, (ulong)version << 32 | (uint)interfaceId));
        return (int)(hash >> 32) & _mask;
    }

    private void Resize(int length)
    {
        NativeArray<Slot> old = _slots;
        _slots = new NativeArray<Slot>(length);
        _mask = length - 1;
        Count = 0;
        foreach (ref readonly Slot slot in old.Span)
        {
            if (slot.InterfacePlusOne != 0)
            {
                Insert(in slot);
            }
        }
        old.Dispose();
    }

    private void Insert(in Slot moved)
    {
        int index = Home(moved.High, moved.Low, moved.Version, moved.InterfacePlusOne - 1);
        while (_slots[index].InterfacePlusOne != 0)
        {
            index = (index + 1) & _mask;
        }
        _slots[index] = moved;
        Count++;
    }

    /// <summary>A way: the destination's address as <see cref="IpAddress.Value"/>'s halves and version, the inside interface, the latest time.</summary>
    private struct Slot
    {
        public ulong High;
        public ulong Low;
        public long LastNs;
        /// <summary>The inside interface's id plus one; 0 marks an empty slot.</summary>
        public int InterfacePlusOne;
        public byte Version;
    }
}
