#include "common/lendable.h"

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

// lent() follows the loans out; the memory outlives its owner's pointer while one is.
TEST(LendableFloatsTest, LoansKeepTheMemoryAndAreCounted) {
  std::shared_ptr<LendableFloats> owner = LendableFloats::Make(5 << 20);  // Huge-page aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(owner->data()) % (2 << 20), 0u);
  owner->data()[7] = 3.5f;
  EXPECT_FALSE(owner->lent());
  std::shared_ptr<const void> a = LendableFloats::Lend(owner);
  std::shared_ptr<const void> b = LendableFloats::Lend(owner);
  EXPECT_EQ(a.get(), owner->data());
  EXPECT_TRUE(owner->lent());
  a.reset();
  EXPECT_TRUE(owner->lent());
  std::weak_ptr<LendableFloats> weak = owner;
  LendableFloats* raw = owner.get();
  owner.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(raw->data()[7], 3.5f);
  EXPECT_TRUE(raw->lent());
  b.reset();
  EXPECT_TRUE(weak.expired());
}

// Loans returned on other threads after reading (as gRPC threads do): the owner
// writes as soon as it sees none out, before the readers are joined, and no reader
// saw that write. Were lent() false too early, readers would see the next round's
// values; were its order weaker than acquire, --config=tsan would report the write.
TEST(LendableFloatsTest, OwnerWritesOnlyOnceEveryLoanIsBack) {
  auto floats = LendableFloats::Make(1024);
  auto fill = [&floats](float v) {
    for (size_t i = 0; i < floats->size(); ++i) floats->data()[i] = v;
  };
  fill(0.0f);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::thread> readers;
    std::vector<int> bad(4, 0);
    for (int r = 0; r < 4; ++r) {
      readers.emplace_back([loan = LendableFloats::Lend(floats), &bad, r, round]() mutable {
        const float* v = static_cast<const float*>(loan.get());
        for (size_t i = 0; i < 1024; ++i) bad[r] += v[i] != static_cast<float>(round);
        loan.reset();
      });
    }
    while (floats->lent()) std::this_thread::yield();
    fill(static_cast<float>(round + 1));  // The readers may still be running.
    for (std::thread& t : readers) t.join();
    for (int r = 0; r < 4; ++r) ASSERT_EQ(bad[r], 0) << "round " << round;
  }
}

// Lent ranges go in at their offsets (first, twice at one offset, last); offsets out
// of order or past the copied bytes join to nothing.
TEST(JoinLentTest, InsertsAtOffsetsAndRefusesDisorder) {
  const std::string copied = "0123";
  const char* abc = "abc";
  auto at = [](size_t offset, const char* data, size_t size) {
    return LentBytes{offset, data, size, nullptr};
  };
  EXPECT_EQ(JoinLent(copied, {at(0, abc, 1), at(2, abc + 1, 1), at(2, abc + 2, 1), at(4, abc, 2)}),
            "a01bc23ab");
  EXPECT_EQ(JoinLent(copied, {}), copied);
  EXPECT_EQ(JoinLent(copied, {at(3, abc, 1), at(2, abc, 1)}), std::nullopt);
  EXPECT_EQ(JoinLent(copied, {at(5, abc, 1)}), std::nullopt);
}

}  // namespace
}  // namespace ps
