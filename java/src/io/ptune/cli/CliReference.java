package io.ptune.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine;
import picocli.CommandLine.Help.Ansi;

/**
 * Writes {@code docs/cli.md}, the command-line reference: picocli's usage help of {@code ptune} and
 * of every subcommand (nested ones too), one Markdown code block each, in the order the commands
 * are declared. The text depends on the picocli definitions only: a fixed width of
 * {@value #WIDTH} columns, no ANSI colours, {@code \n} line ends (a test compares it with the
 * committed file, so it must not change with the terminal or the platform).
 *
 * <p>Regenerate after changing a command or option, from the repository root:
 * {@value #REGENERATE}
 */
public final class CliReference {
    /** Columns of the usage help in the reference. */
    public static final int WIDTH = 100;

    /** The one-line command that rewrites docs/cli.md (after {@code mvn -B -q -DskipTests package}). */
    public static final String REGENERATE =
            "java -cp 'target/classes:target/lib/*' io.ptune.cli.CliReference docs/cli.md";

    private CliReference() {}

    /** The whole reference as Markdown. */
    public static String markdown() {
        CommandLine root = PtuneCli.commandLine();
        StringBuilder md = new StringBuilder();
        md.append("# ptune command-line reference\n\n")
                .append("Generated from the picocli definitions in `java/src/io/ptune/cli/` by `io.ptune.cli.CliReference`;\n")
                .append("do not edit by hand. After changing a command, regenerate it from the repository root with\n\n")
                .append("```bash\nmvn -B -q -DskipTests package && ").append(REGENERATE).append("\n```\n\n")
                .append("(`CliReferenceTest` fails while this file differs from the commands.) Every command also\n")
                .append("prints its own help with `--help`; the flags are described in [README.md](../README.md),\n")
                .append("[methods/](methods/README.md) and [tasks/](tasks/README.md).\n\n")
                .append("Commands:\n\n");
        appendIndex(md, root, 0);
        appendUsage(md, root);
        return md.toString().stripTrailing() + "\n";
    }

    private static void appendIndex(StringBuilder md, CommandLine command, int depth) {
        String name = command.getCommandSpec().qualifiedName();
        md.append("  ".repeat(depth)).append("- [`").append(name).append("`](#")
                .append(name.replace(' ', '-')).append(")\n");
        for (CommandLine sub : command.getSubcommands().values()) {
            appendIndex(md, sub, depth + 1);
        }
        if (depth == 0) {
            md.append('\n');
        }
    }

    private static void appendUsage(StringBuilder md, CommandLine command) {
        command.setUsageHelpWidth(WIDTH);
        command.setUsageHelpAutoWidth(false);
        String usage = command.getUsageMessage(Ansi.OFF).replace("\r\n", "\n").stripTrailing();
        md.append("## ").append(command.getCommandSpec().qualifiedName()).append("\n\n")
                .append("```text\n").append(usage).append("\n```\n\n");
        for (CommandLine sub : command.getSubcommands().values()) {
            appendUsage(md, sub);
        }
    }

    /** {@code CliReference FILE}: writes the reference to FILE (docs/cli.md). */
    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: " + REGENERATE.replace("docs/cli.md", "FILE"));
            System.exit(2);
        }
        String text = markdown();
        Path file = Path.of(args[0]);
        Files.writeString(file, text, StandardCharsets.UTF_8);
        System.out.println("wrote " + file + " (" + text.lines().count() + " lines)");
    }
}
