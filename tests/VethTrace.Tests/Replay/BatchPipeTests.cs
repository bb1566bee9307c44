using VethTrace.Tracing;

namespace VethTrace.Tests.Replay;

/// <summary>The hand-off between replay's reading thread and its matching thread.</summary>
public sealed class BatchPipeTests
{
    private struct Collect : IBatchConsumer<long>
    {
        public List<long> Seen;
        public int Batches;
        /// <summary>Stops the pipe once this many values have arrived (0: never).</summary>
        public int StopAfter;
        public BatchPipe<long>? Pipe;

        public void Take(ReadOnlySpan<long> values)
        {
            Batches++;
            foreach (long value in values)
            {
                Seen.Add(value);
            }
            if (StopAfter > 0 && Seen.Count >= StopAfter)
            {
                Pipe!.Stop();
            }
        }
    }

    private static Thread Produce(BatchPipe<long> pipe, long count, Exception? failAt = null)
    {
        var thread = new Thread(() =>
        {
            for (long i = 0; i < count && !pipe.Stopped; i++)
            {
                pipe.Add(i);
            }
            pipe.Complete(failAt);
        });
        thread.Start();
        return thread;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(100_003)]
    public void Consume_EveryValueInOrder_InBatchesOfTheGivenSize(long count)
    {
        using var pipe = new BatchPipe<long>(batchSize: 8, depth: 2);
        Thread producer = Produce(pipe, count);
        var collect = new Collect { Seen = [] };
        pipe.Consume(ref collect);
        producer.Join();

        Assert.Equal(Enumerable.Range(0, (int)count).Select(i => (long)i), collect.Seen);
        Assert.Equal((count + 7) / 8, collect.Batches); // full batches, and the partial last one
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(8)]
    public void Consume_AnyDepth_EveryValueInOrder(int depth)
    {
        // A producer that finds no room sleeps until half of it is free (none at depth 1): it must still be woken.
        using var pipe = new BatchPipe<long>(batchSize: 4, depth);
        Thread producer = Produce(pipe, 50_001);
        var collect = new Collect { Seen = [] };
        pipe.Consume(ref collect);

        Assert.True(producer.Join(TimeSpan.FromSeconds(30)), "the producer is still blocked");
        Assert.Equal(Enumerable.Range(0, 50_001).Select(i => (long)i), collect.Seen);
    }

    [Fact]
    public void Consume_ProducerFailed_RethrowsItsExceptionAfterTheValuesBefore()
    {
        using var pipe = new BatchPipe<long>(batchSize: 8, depth: 2);
        var failure = new InvalidDataException("damaged at byte 1234");
        Thread producer = Produce(pipe, 20, failure);
        var collect = new Collect { Seen = [] };

        var thrown = Assert.Throws<InvalidDataException>(() => pipe.Consume(ref collect));
        producer.Join();

        Assert.Same(failure, thrown);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)i), collect.Seen); // every value added before the failure
    }

    [Fact]
    public void Stop_ReleasesAProducerWaitingForRoom()
    {
        using var pipe = new BatchPipe<long>(batchSize: 4, depth: 1);
        // Far more than fits: the producer blocks on the full queue until the consumer stops.
        Thread producer = Produce(pipe, 1_000_000);
        var collect = new Collect { Seen = [], StopAfter = 12, Pipe = pipe };
        pipe.Consume(ref collect);

        Assert.True(producer.Join(TimeSpan.FromSeconds(30)), "the producer is still blocked after Stop");
        Assert.True(pipe.Stopped);
        Assert.Equal(12, collect.Seen.Count);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => (long)i), collect.Seen);
    }
}
