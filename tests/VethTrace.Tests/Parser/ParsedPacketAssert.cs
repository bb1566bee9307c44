using System.Reflection;
using VethTrace.Packets;

namespace VethTrace.Tests.Parser;

/// <summary>
/// Field by field, by reflection, that a parse gave what the general parser gives: every field of the packet, its outer
/// layers, and its inner ones when the general parser found a tunnel. Shared by the tests that hold a fast path to the
/// general parser (<see cref="CommonShapeTests"/>, <see cref="Sll2FirstTierTests"/>).
/// </summary>
internal static class ParsedPacketAssert
{
    private static readonly FieldInfo[] s_layerFields = typeof(PacketLayers).GetFields(BindingFlags.Public | BindingFlags.Instance);
    private static readonly FieldInfo[] s_packetFields = typeof(ParsedPacket).GetFields(BindingFlags.Public | BindingFlags.Instance)
        .Where(f => f.FieldType != typeof(PacketLayers)).ToArray();

    public static void Same(ParsedPacket expected, ParsedPacket actual, string what)
    {
        foreach (FieldInfo field in s_packetFields)
        {
            AssertField(field, field.GetValue(expected), field.GetValue(actual), what);
        }
        AssertLayers(expected.Outer, actual.Outer, what + ", Outer");
        if (expected.TunnelDepth > 0)
        {
            AssertLayers(expected.Inner, actual.Inner, what + ", Inner");
        }
    }

    private static void AssertLayers(PacketLayers expected, PacketLayers actual, string what)
    {
        foreach (FieldInfo field in s_layerFields)
        {
            AssertField(field, field.GetValue(expected), field.GetValue(actual), what);
        }
    }

    private static void AssertField(FieldInfo field, object? expected, object? actual, string what)
    {
        if (expected is MplsLabelStack expectedStack && actual is MplsLabelStack actualStack)
        {
            // An inline array: compare every entry, not only the one field reflection sees.
            ReadOnlySpan<MplsLabel> e = expectedStack, a = actualStack;
            Assert.True(e.SequenceEqual(a), $"{what}: {field.Name} is [{string.Join(",", a.ToArray())}], the general parser says [{string.Join(",", e.ToArray())}]");
            return;
        }
        Assert.True(Equals(expected, actual), $"{what}: {field.Name} is {actual}, the general parser says {expected}");
    }
}
