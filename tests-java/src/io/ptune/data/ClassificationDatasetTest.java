package io.ptune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.DatasetException;
import io.ptune.TestPaths;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClassificationDatasetTest {
    @TempDir
    Path dir;

    @Test
    void readsSst2Dev() {
        ClassificationDataset dev = ClassificationDataset.load(TestPaths.shared().resolve("data/sst2/dev.tsv"));
        assertEquals(872, dev.size());
        assertEquals(List.of("0", "1"), dev.labels());
        assertEquals("it 's a charming and often affecting journey .", dev.examples().get(0).text());
        assertEquals("1", dev.examples().get(0).label());
        assertEquals(2, dev.examples().get(0).line(), "the header is line 1");
        assertEquals(872, dev.classCounts()[0] + dev.classCounts()[1]);
    }

    @Test
    void readsChnSentiCorpWithItsByteOrderMarkAndQuotes() {
        ClassificationDataset data = ClassificationDataset.load(
                TestPaths.shared().resolve("data/chnsenticorp/ChnSentiCorp_htl_all.csv"));
        assertEquals(List.of("0", "1"), data.labels());
        assertTrue(data.size() > 7000, "rows: " + data.size());
        assertTrue(data.examples().get(0).text().startsWith("距离川沙公路较近"), data.examples().get(0).text());
        // The 80/20 stratified split keeps each class's share.
        List<ClassificationDataset> split = data.stratifiedSplit(0.2, 0);
        int[] all = data.classCounts(), dev = split.get(1).classCounts();
        for (int c = 0; c < 2; c++) {
            assertEquals(Math.round(0.2 * all[c]), dev[c], "class " + c);
        }
        assertEquals(data.size(), split.get(0).size() + split.get(1).size());
        assertEquals(split.get(1).examples(), data.stratifiedSplit(0.2, 0).get(1).examples(), "seeded");
    }

    @Test
    void readsJsonLinesWithPairsAndNamedFields() throws Exception {
        Path file = dir.resolve("pairs.jsonl");
        Files.writeString(file, """
                {"premise": "A man eats.", "hypothesis": "Someone eats.", "gold": "entailment"}

                {"premise": "A cat.", "hypothesis": "A dog.", "gold": "contradiction"}
                """);
        ClassificationDataset data = ClassificationDataset.load(file,
                new ClassificationDataset.Fields("premise", "hypothesis", "gold"), null);
        assertEquals(List.of("contradiction", "entailment"), data.labels());
        assertEquals("Someone eats.", data.examples().get(0).textB());
        assertEquals(3, data.examples().get(1).line());
        assertNull(ClassificationDataset.load(file, new ClassificationDataset.Fields("premise", null, "gold"), null)
                .examples().get(0).textB());
    }

    @Test
    void badRowsNameTheFileAndLine() throws Exception {
        Path csv = dir.resolve("bad.csv");
        Files.writeString(csv, "label,review\n1,\"good, really\"\n0,bad\n2,odd\n", StandardCharsets.UTF_8);
        DatasetException unknown = assertThrows(DatasetException.class,
                () -> ClassificationDataset.load(csv, ClassificationDataset.Fields.DEFAULT, List.of("0", "1")));
        assertTrue(unknown.getMessage().contains("bad.csv:4: label '2' is not one of [0, 1]"), unknown.getMessage());
        Path missing = dir.resolve("missing.tsv");
        Files.writeString(missing, "sentence\tlabel\nfine\t1\n");
        DatasetException field = assertThrows(DatasetException.class, () -> ClassificationDataset.load(missing,
                new ClassificationDataset.Fields("sentence", null, "gold"), null));
        assertTrue(field.getMessage().contains("missing.tsv:2: missing field 'gold'"), field.getMessage());
        Path one = dir.resolve("one.tsv");
        Files.writeString(one, "sentence\tlabel\na\t1\nb\t1\n");
        DatasetException single = assertThrows(DatasetException.class, () -> ClassificationDataset.load(one));
        assertTrue(single.getMessage().contains("only one class"), single.getMessage());
        assertTrue(assertThrows(DatasetException.class, () -> ClassificationDataset.load(dir.resolve("x.txt")))
                .getMessage().contains("unknown data format"));
    }
}
