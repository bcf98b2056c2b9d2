package io.ptune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.TestPaths;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;
import picocli.CommandLine;

/** docs/cli.md is what {@link CliReference} generates from the commands as they are now. */
@DisabledIfSystemProperty(named = "ptune.kernel", matches = TestPaths.KERNEL_INDEPENDENT)
class CliReferenceTest {
    @Test
    void docsCliMdIsUpToDate() throws IOException {
        Path file = TestPaths.root().resolve("docs/cli.md");
        String committed = Files.exists(file) ? Files.readString(file, StandardCharsets.UTF_8) : "";
        String generated = CliReference.markdown();
        if (!generated.equals(committed)) {
            String[] want = generated.split("\n", -1);
            String[] have = committed.split("\n", -1);
            int line = 0;
            while (line < want.length && line < have.length && want[line].equals(have[line])) {
                line++;
            }
            throw new AssertionError("docs/cli.md is out of date; run " + CliReference.REGENERATE
                    + " (after mvn -B -q -DskipTests package) to regenerate. First difference at line " + (line + 1)
                    + ":\n  generated: " + (line < want.length ? want[line] : "<end>")
                    + "\n  committed: " + (line < have.length ? have[line] : "<end>"));
        }
    }

    @Test
    void everyCommandHasItsSectionAndTheUsageFitsTheFixedWidth() {
        String md = CliReference.markdown();
        CommandLine root = PtuneCli.commandLine();
        assertTrue(md.contains("## ptune\n"), "the top-level command");
        for (String name : root.getSubcommands().keySet()) {
            assertTrue(md.contains("## ptune " + name + "\n"), "a section for ptune " + name);
            assertTrue(md.contains("Usage: ptune " + name + " "), "the usage of ptune " + name);
        }
        boolean usage = false;
        for (String line : md.split("\n")) {
            if (line.startsWith("```")) {
                usage = line.equals("```text");
            } else if (usage) {
                assertTrue(line.length() <= CliReference.WIDTH, "usage lines fit " + CliReference.WIDTH
                        + " columns: " + line);
            }
        }
    }

    @Test
    void theTextDoesNotDependOnTheTerminal() {
        String before = CliReference.markdown();
        String property = System.getProperty("picocli.ansi");
        System.setProperty("picocli.ansi", "true");
        try {
            assertEquals(before, CliReference.markdown(), "no ANSI escapes even when picocli would colour");
        } finally {
            if (property == null) {
                System.clearProperty("picocli.ansi");
            } else {
                System.setProperty("picocli.ansi", property);
            }
        }
        assertTrue(!before.contains("\u001b["), "no escape sequences");
    }
}
