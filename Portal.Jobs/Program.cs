namespace Portal.Jobs;

public static class Worker
{
    public static int Main(string[] args)
    {
        Console.WriteLine("Portal.Jobs worker: not yet implemented.");
        return 1;
    }
}
