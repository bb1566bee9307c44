using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace VethTrace.Flows;

/// <summary>
/// A small, fixed 64-bit hash: no per-process seed, so values are stable across runs and machines
/// and tests can assert them. The round and the avalanche are those of xxHash64 (public domain constants).
/// It is not for hash tables exposed to attackers; collisions are handled by the correlator's window.
/// </summary>
public static class StableHash
{
    private const ulong Prime1 = 0x9E3779B185EBCA87UL;
    private const ulong Prime2 = 0xC2B2AE3D27D4EB4FUL;
    private const ulong Prime3 = 0x165667B19E3779F9UL;
    private const ulong Prime4 = 0x85EBCA77C2B2AE63UL;

    /// <summary>The starting value; changing it changes every fingerprint.</summary>
    public const ulong Seed = 0x5645_5448_5452_4331UL; // "VETHTRC1"

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Add(ulong hash, ulong value)
    {
        ulong round = BitOperations.RotateLeft(value * Prime2, 31) * Prime1;
        return BitOperations.RotateLeft(hash ^ round, 27) * Prime1 + Prime4;
    }

    /// <summary>Adds up to 8 bytes as one little-endian word, zero-padded, and their count.</summary>
    public static ulong AddBytes(ulong hash, ReadOnlySpan<byte> bytes)
    {
        ulong word;
        if (bytes.Length >= 8)
        {
            word = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        }
        else
        {
            word = 0;
            for (int i = 0; i < bytes.Length; i++)
            {
                word |= (ulong)bytes[i] << (8 * i);
            }
        }
        return Add(Add(hash, word), (ulong)Math.Min(bytes.Length, 8));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Finish(ulong hash)
    {
        hash ^= hash >> 33;
        hash *= Prime2;
        hash ^= hash >> 29;
        hash *= Prime3;
        hash ^= hash >> 32;
        return hash;
    }
}
